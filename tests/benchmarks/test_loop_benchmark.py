"""benchmarks/loop.py: the real online loop and its parts at a tiny setting give consistent rows
(the overhead is the loop's time less the parts' sum), and a bad --setting is one error line."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import loop  # noqa: E402

PARTS = ("act", "env", "update", "sample")


def test_rows_hold_the_loop_its_parts_and_their_difference(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("mbdpo_torch")
    pytest.importorskip("metaworld")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # main sets them; restored afterwards
    monkeypatch.setenv("XLA_FLAGS", "")
    threads, out = torch.get_num_threads(), tmp_path / "rows.json"
    argv = ["--setting", "cpu", "--backend", "torch", "--task", "mw-reach", "--seed-steps", "100"]
    argv += ["--steps", "3", "--warmup", "1", "--reps", "2", "--train-updates", "2"]
    try:
        loop.main([*argv, "--override", "batch_size=16", "--json", str(out)])
    finally:
        torch.set_num_threads(threads)

    (row,) = json.loads(out.read_text())["rows"]
    assert (row["setting"], row["backend"], row["seed_steps"], row["steps"]) == (
        "cpu",
        "torch",
        100,
        3,
    )
    timed = [f"{p}_ms" for p in (*PARTS, "loop")]
    for name in (*timed, "burst_ms_per_update", "act_initial_ms", "matmul_ms"):
        assert row[name] > 0, name
    parts = (
        row["act_ms"]
        + row["env_ms"]
        + row["updates_per_step"] * (row["update_ms"] + row["sample_ms"])
    )
    assert row["parts_ms"] == pytest.approx(parts, rel=1e-9)
    assert row["overhead_ms"] == pytest.approx(row["loop_ms"] - parts, rel=1e-9, abs=1e-9)
    assert row["overhead_pct"] == pytest.approx(100 * (row["loop_ms"] - parts) / row["loop_ms"])
    assert row["act_trained_ratio"] > 0 and row["act_after_updates_ratio"] > 0
    assert row["loop_units"] == pytest.approx(row["loop_ms"] / row["matmul_ms"])


def test_a_bad_setting_is_one_error_line(capsys):
    with pytest.raises(SystemExit) as stop:
        loop.main(["--setting", "huge"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --setting: invalid choice: 'huge'" in err
    assert "'reduced'" in err and "'cpu'" in err
