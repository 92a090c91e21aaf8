"""The committed chunks under tests/data/mt80-tiny (read by CI's install-alone check, where torch
is absent) are the published format of known arrays: chunk_0 with tensordict 0.2.x's class path,
chunk_1 with today's and a `terminated` array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mbdpo_data.convert import convert
from published_chunks import episodes_arrays

FIXTURE = Path(__file__).parent / "data" / "mt80-tiny"


def test_the_committed_chunks_convert_to_the_arrays_they_were_made_from(tmp_path, mt80):
    convert(FIXTURE, tmp_path / "out", progress=False, log=lambda line: None)
    made = {
        "chunk_0": episodes_arrays(mt80, 2, seed=10),
        "chunk_1": episodes_arrays(mt80, 2, seed=11, terminated=True),
    }
    for name, arrays in made.items():
        with np.load(tmp_path / "out" / f"{name}.npz") as converted:
            assert sorted(converted.files) == sorted(arrays)
            for key, expected in arrays.items():
                assert converted[key].dtype == expected.dtype
                assert converted[key].tobytes() == expected.tobytes(), (name, key)
