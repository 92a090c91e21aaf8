"""Configuration: default.yaml (values), Config (schema), presets, load_config, and describe."""

from .describe import TOPICS, describe
from .load import CHOICES, config_from_dict, config_to_dict, load_config, parse_overrides
from .presets import MODEL_SIZES, PRESETS
from .schema import Config

__all__ = [
    "CHOICES",
    "MODEL_SIZES",
    "PRESETS",
    "TOPICS",
    "Config",
    "config_from_dict",
    "config_to_dict",
    "describe",
    "load_config",
    "parse_overrides",
]
