"""Fixtures of the mbdpo-data tests; chunk writers are in published_chunks.py."""

from __future__ import annotations

import pytest
from mbdpo_data.layouts import LAYOUTS, DatasetLayout


@pytest.fixture
def mt80() -> DatasetLayout:
    return LAYOUTS["mt80"]


@pytest.fixture
def mt30() -> DatasetLayout:
    return LAYOUTS["mt30"]
