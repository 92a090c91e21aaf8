"""benchmarks/speed.py --published: the published code timed beside ours in matmul units, the
table's ratios equal ours/published from the JSON, and a path that is not a checkout of the
published code is a one-line error."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEED = ROOT / "benchmarks" / "speed.py"
PUBLISHED = Path(os.environ.get("MBDPO_PUBLISHED_CHECKOUT", "/work/published-mbdpo"))
REQUIRED = ("MBDPO/mbdpo.py", "MBDPO/diffusion.py", "MBDPO/common/__init__.py", "cfgs/config.yaml")

sys.path.insert(0, str(ROOT / "benchmarks"))
from speed import format_table, main  # noqa: E402


def run_speed(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SPEED), *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.skipif(
    not (PUBLISHED / "MBDPO" / "mbdpo.py").is_file(),
    reason=f"no checkout of github.com/Edmond1Cheng/MBDPO at {PUBLISHED} "
    "(set MBDPO_PUBLISHED_CHECKOUT)",
)
def test_table_ratios_equal_ours_over_published_from_json():
    done = run_speed(
        *("--backend", "torch", "--model-size", "1", "--dims", "17,6", "--preset", "cpu"),
        *("--batch-size", "64", "--reps", "1", "--warmup", "0", "--threads", "1"),
        *("--alternate", "2", "--published", str(PUBLISHED), "--json"),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (row,) = report["results"]
    matmul_ms = report["matmul_ms"]
    for call in ("act", "update"):
        assert row[f"published_{call}_ms"] > 0
        assert row[f"published_{call}_units"] == pytest.approx(
            row[f"published_{call}_ms"] / matmul_ms
        )

    table = format_table([row]).splitlines()

    published = next(line for line in table if line.startswith("published PyTorch code"))
    assert [float(v) for v in published.split()[-2:]] == [
        round(row["published_act_units"], 1),
        round(row["published_update_units"], 1),
    ]
    limit = next(line for line in table if line.startswith("exact FLOPs at matmul speed"))
    matmul_gflop = 2 * 1024**3 / 1e9
    assert [float(v) for v in limit.split()[-2:]] == [
        round(row["act_gflop"] / matmul_gflop, 1),
        round(row["update_gflop"] / matmul_gflop, 1),
    ]
    ratios = re.fullmatch(r"ours / published: torch act ([\d.]+), update ([\d.]+)", table[-1])
    assert ratios, table[-1]
    assert float(ratios[1]) == pytest.approx(
        row["act_ms"] / row["published_act_ms"], abs=0.005 + 1e-9
    )
    assert float(ratios[2]) == pytest.approx(
        row["update_ms"] / row["published_update_ms"], abs=0.005 + 1e-9
    )


@pytest.mark.parametrize("absent", REQUIRED)
def test_a_path_that_is_not_the_published_code_is_a_one_line_error(tmp_path, capsys, absent):
    for name in REQUIRED:
        if name != absent:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text("")
    with pytest.raises(SystemExit) as exit_:
        main(["--backend", "torch", "--model-size", "1", "--published", str(tmp_path)])
    assert capsys.readouterr().out == ""  # raised before timing anything
    assert str(exit_.value) == (
        f"--published {tmp_path}: not a checkout of github.com/Edmond1Cheng/MBDPO "
        f"(missing {absent})."
    )


def test_published_code_that_fails_to_import_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_published prepends tmp_path/MBDPO
    for name in REQUIRED:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "MBDPO" / "common" / "__init__.py").write_text("import a_module_nobody_has\n")
    with pytest.raises(SystemExit) as exit_:
        main(["--backend", "torch", "--model-size", "1", "--published", str(tmp_path)])
    assert str(exit_.value) == (
        f"--published {tmp_path}: importing the published code failed: "
        "ModuleNotFoundError: No module named 'a_module_nobody_has'"
    )
