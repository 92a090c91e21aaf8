"""Offline datasets for MBDPO: TD-MPC2's mt30/mt80 `.pt` chunks converted safely to `.npz` and
read memory-mapped into core's `Batch` (docs/data.md)."""

from .convert import convert
from .dataset import OfflineDataset
from .layouts import LAYOUTS, DatasetLayout
from .sampler import DatasetSampler

__all__ = ["DatasetLayout", "DatasetSampler", "LAYOUTS", "OfflineDataset", "convert"]
