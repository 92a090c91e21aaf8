"""Faults around a run, not inside the loop: run directories that cannot be used, two processes
on one run, a full disk, a second Ctrl-C (tests/apps runs the same through apps/train)."""

import contextlib
import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
from mbdpo_core.checkpoint import load_checkpoint, save_checkpoint
from mbdpo_core.config import load_config
from mbdpo_core.errors import ConfigError
from mbdpo_core.loops import Checkpointer, LoopState
from mbdpo_core.loops.checkpointing import TEMPORARY_GLOB
from mbdpo_core.rundir import RunLock, check_run_dir, write_config


@contextlib.contextmanager
def small_filesystem(path: Path, size: str, read_only: bool = False):
    """A tmpfs of `size` mounted at `path`; skips the test where mounting is not allowed."""
    path.mkdir()
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_new_run_refuses_a_used_directory_and_a_resume_needs_a_run(tmp_path):
    check_run_dir(tmp_path / "new" / "run", resume=False)  # missing folders are fine
    (tmp_path / "empty").mkdir()
    check_run_dir(tmp_path / "empty", resume=False)

    used = tmp_path / "used"
    write_config(used, load_config(["preset=cpu"], backend="torch"))
    with pytest.raises(ConfigError, match="not empty: it holds a run.*resume=true"):
        check_run_dir(used, resume=False)
    check_run_dir(used, resume=True)
    with pytest.raises(ConfigError, match="not a run directory"):
        check_run_dir(tmp_path / "empty", resume=True)


def test_a_run_dir_that_is_a_file_or_under_a_file_is_refused(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        check_run_dir(file, resume=False)
    with pytest.raises(ConfigError, match="cannot be created: .*file is a file"):
        check_run_dir(file / "run", resume=False)


def test_a_read_only_run_dir_is_refused_before_anything_is_written(tmp_path):
    with small_filesystem(tmp_path / "ro", "1m", read_only=True) as ro:
        with pytest.raises(ConfigError, match="cannot be written.*not writable"):
            check_run_dir(ro / "run", resume=False)


def test_one_run_directory_is_used_by_one_process_at_a_time(tmp_path):
    first = RunLock(tmp_path)
    with pytest.raises(ConfigError, match=f"in use by another process \\(pid {os.getpid()}\\)"):
        RunLock(tmp_path)
    first.release()
    RunLock(tmp_path).release()


def test_a_full_disk_fails_the_write_and_keeps_the_previous_checkpoint(tmp_path):
    with small_filesystem(tmp_path / "small", "256k") as small:
        checkpoints = Checkpointer(small)
        state = LoopState(step=10)
        checkpoints.save(({"w": np.ones(1000, np.float32)}, {"backend": "numpy"}), state)
        state.step = 20
        with pytest.raises(OSError) as full:
            checkpoints.save(({"w": np.ones(100_000, np.float32)}, {"backend": "numpy"}), state)
        assert full.value.errno == errno.ENOSPC
        assert not list(small.rglob(TEMPORARY_GLOB))  # the failed write cleaned up after itself
        assert checkpoints.steps() == [10]
        arrays, _ = load_checkpoint(small / "checkpoints" / "step_10")
        np.testing.assert_array_equal(arrays["w"], np.ones(1000, np.float32))


def test_an_injected_full_disk_leaves_no_temporary_file(tmp_path, monkeypatch):
    """The same where no filesystem can be mounted: the writer raises ENOSPC midway."""

    def full(tensors, path, metadata=None):
        Path(path).write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    save_checkpoint(tmp_path / "step_1", {"w": np.ones(3, np.float32)}, {})
    monkeypatch.setattr(safetensors.numpy, "save_file", full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(tmp_path / "step_2", {"w": np.ones(3, np.float32)}, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_1.json", "step_1.safetensors"]


SIGNALS = """
import os, signal, time
from mbdpo_core.loops import StopRequest
with StopRequest() as stop:
    os.kill(os.getpid(), signal.{sig})
    print(stop.signal, flush=True)
    os.kill(os.getpid(), signal.{sig})
    time.sleep(30)
print("not reached", flush=True)
"""


@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_first_signal_is_recorded_and_a_second_exits_at_once(sig, code):
    script = SIGNALS.format(sig=sig)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    assert out.returncode == code
    assert out.stdout.split() == [sig]  # the first was only recorded
    assert f"{sig}: stopping after the current step" in out.stderr
    assert f"second {sig}: exiting now" in out.stderr
