"""Logger: CSV columns and resume, TensorBoard scalars read back from the event files."""

import csv
import struct
import subprocess
import sys

import numpy as np
from mbdpo_core.logger import Logger
from tensorboardX.proto.event_pb2 import Event


def _rows(path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        return next(reader), list(reader)


def _events(run_dir):
    """Every Event of every events.out.tfevents.* file (TFRecord framing, read without TF)."""
    events = []
    files = sorted(run_dir.glob("events.out.tfevents.*"))
    for path in files:
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            events.append(Event.FromString(data[pos + 12 : pos + 12 + length]))
            pos += 12 + length + 4
    return files, events


def _scalars(events):
    return [(e.step, v.tag, v.simple_value) for e in events for v in e.summary.value]


def test_csv_columns_union_header_and_console(tmp_path, capsys):
    log = Logger(tmp_path, console=True, tensorboard=False)
    log.log("eval", 0, {"episode_length": 1000, "episode_reward": 12.5, "episode_success": 0.0})
    log.log("eval", 500, {"episode_reward": 30.25, "episode_success": 1.0, "episode_length": 990})
    log.log("train", 100, {"episode_reward": 3.0, "episode": 1})
    log.log("train", 200, {"episode_reward": 4.0, "episode": 2, "value_loss": 0.5})
    log.close()
    header, rows = _rows(tmp_path / "eval.csv")
    assert header == ["step", "episode_reward", "episode_success", "episode_length"]
    assert rows == [["0", "12.5", "0.0", "1000"], ["500", "30.25", "1.0", "990"]]
    header, rows = _rows(tmp_path / "train.csv")
    assert header == ["step", "episode_reward", "episode", "value_loss"]
    assert rows == [["100", "3.0", "1", ""], ["200", "4.0", "2", "0.5"]]
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2  # eval only
    assert lines[1].startswith("eval  step 500") and "reward 30.25" in lines[1]
    assert "length 990" in lines[1]


def test_resume_appends_and_truncates(tmp_path):
    log = Logger(tmp_path, console=False, tensorboard=False)
    for step in (10, 20, 30, 40):
        log.log("train", step, {"loss": step / 10})
    log.log("eval", 20, {"episode_reward": 1.0, "episode_success": 0.0, "episode_length": 5})
    log.log("eval", 40, {"episode_reward": 2.0, "episode_success": 0.0, "episode_length": 5})
    log.close()
    (tmp_path / "other.csv").write_text("name,value\nx,100\n")

    resumed = Logger(tmp_path, console=False, tensorboard=False)
    resumed.truncate_after(20)
    resumed.log("train", 30, {"loss": np.float32(9.0)})
    resumed.close()
    assert _rows(tmp_path / "train.csv") == (
        ["step", "loss"],
        [["10", "1.0"], ["20", "2.0"], ["30", "9.0"]],
    )
    assert [r[0] for r in _rows(tmp_path / "eval.csv")[1]] == ["20"]
    assert (tmp_path / "other.csv").read_text() == "name,value\nx,100\n"


def test_tensorboard_scalars_and_purge_on_resume(tmp_path):
    log = Logger(tmp_path, console=False)
    log.log("train", 1, {"loss": 0.5, "episode": 1})
    log.log("eval", 2, {"episode_reward": 7.0, "episode_success": 1.0, "episode_length": 3})
    log.close()
    files, events = _events(tmp_path)
    assert len(files) == 1 and files[0].stat().st_size > 0
    assert sorted(_scalars(events)) == [
        (1, "train/episode", 1.0),
        (1, "train/loss", 0.5),
        (2, "eval/episode_length", 3.0),
        (2, "eval/episode_reward", 7.0),
        (2, "eval/episode_success", 1.0),
    ]
    resumed = Logger(tmp_path, console=False)
    resumed.truncate_after(1)
    resumed.log("train", 2, {"loss": 0.25})
    resumed.close()
    files, events = _events(tmp_path)
    assert len(files) == 2
    new = [e for e in events if e.session_log.status == e.session_log.START]
    assert [e.step for e in new] == [2]  # TensorBoard hides events from step 2 on in older files
    assert (2, "train/loss", 0.25) in _scalars(events)


def test_truncate_with_an_open_writer_starts_a_new_event_file(tmp_path):
    log = Logger(tmp_path, console=False)
    log.log("train", 1, {"loss": 1.0})
    log.log("train", 2, {"loss": 2.0})
    log.truncate_after(1)
    log.log("train", 2, {"loss": 3.0})
    log.close()
    files, events = _events(tmp_path)
    assert len(files) == 2
    assert sorted(_scalars(events)) == [
        (1, "train/loss", 1.0),
        (2, "train/loss", 2.0),
        (2, "train/loss", 3.0),
    ]
    assert _rows(tmp_path / "train.csv")[1] == [["1", "1.0"], ["2", "3.0"]]


def test_tensorboard_logging_does_not_import_torch(tmp_path):
    code = (
        "import sys; from mbdpo_core.logger import Logger; "
        f"log = Logger({str(tmp_path)!r}, console=False); log.log('train', 1, {{'x': 1.0}}); "
        "log.close(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1


def test_tensorboard_itself_reads_the_run_as_the_readme_says(tmp_path):
    """`uv run tensorboard --logdir runs` (tensorboard is a dev dependency) loads our scalars."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    log = Logger(tmp_path / "runs" / "a", console=False)
    for step, loss in ((1, 0.5), (2, 0.25)):
        log.log("train", step, {"loss": loss})
    log.close()
    runs = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "runs"))
    runs.Reload()
    assert list(runs.Runs()) == ["a"]
    scalars = runs.Scalars("a", "train/loss")
    assert [(s.step, s.value) for s in scalars] == [(1, 0.5), (2, 0.25)]
