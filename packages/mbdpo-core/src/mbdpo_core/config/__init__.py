"""Configuration: default.yaml (values), Config (schema), presets, and load_config."""

from .load import CHOICES, config_from_dict, config_to_dict, load_config, parse_overrides
from .presets import MODEL_SIZES, PRESETS
from .schema import Config

__all__ = [
    "CHOICES",
    "MODEL_SIZES",
    "PRESETS",
    "Config",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "parse_overrides",
]
