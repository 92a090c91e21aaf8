"""Weights & Biases tracking of a run, beside its CSV and TensorBoard outputs
(docs/design.md#experiment-tracking).

`WandbRun` is made before the run directory is written (it imports wandb), `start`ed once the
directory is locked and a resumed run restored, fed by the `Logger` (every number of every row,
under its TensorBoard tag `<category>/<key>`, at the row's step) and `finish`ed at the end of the
session. The W&B run's config is the run's resolved config; its name is the run directory's last
two path components; its id is drawn once and kept in `<run_dir>/wandb.json`, so `resume=true`
continues the same W&B run (resume="allow"). W&B's own files go to `<run_dir>/wandb/` (or to
$WANDB_DIR), where `wandb sync` finds an offline run.

W&B cannot delete history. When a resumed run rewrites the CSV rows after its checkpoint's step
(`Logger.truncate_after`), W&B keeps the rows the earlier sessions sent, up to `logged_through`
(remembered in wandb.json), and is sent only the rows after it: no step is logged twice. On the
same backend a resumed run repeats those rows exactly, wall-clock columns aside.

At the end of a session that finished or was stopped, `finish` uploads two artefacts: `<id>-files`
(type "run-files": config.json, history.jsonl, the CSVs, TensorBoard events and videos, i.e. the
run directory's files outside checkpoints/ and W&B's folder) and `<id>-model` (type "model": the
newest checkpoint's step_<N>.safetensors and .json, as apps/evaluate and mode=finetune read them:
parameters, optimizer state, counters; not the replay).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .checkpoint import latest_checkpoint
from .config import Config, config_to_dict
from .config.validate import MISSING_WANDB
from .errors import MbdpoError, MissingExtraError

__all__ = ["WANDB_FILE", "WandbRun", "run_files"]

WANDB_FILE = "wandb.json"
"""`{"id": the W&B run id, "logged_through": the last step W&B holds, or null}`."""


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise MissingExtraError(MISSING_WANDB) from None
    return wandb


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def run_files(run_dir: Path) -> list[Path]:
    """The files of `<id>-files`: every file under run_dir except checkpoints/, W&B's folder,
    wandb.json and hidden files (the lock, temporaries of atomic writes)."""
    skipped = {"checkpoints", "wandb", WANDB_FILE}
    return sorted(
        path
        for path in run_dir.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(run_dir).parts)
        and path.relative_to(run_dir).parts[0] not in skipped
    )


class WandbRun:
    """The W&B run of one run directory (rank 0 of a data-parallel run only).

    Args:
        cfg: the run's resolved config (wandb_project, wandb_entity, wandb_group, wandb_mode).
        run_dir: the run directory; its wandb.json, if any, names the W&B run to continue.

    Raises:
        MissingExtraError: wandb is not installed.
        MbdpoError: an online run without a W&B login (W&B prompts for one on a terminal).
    """

    def __init__(self, cfg: Config, run_dir: Path) -> None:
        self._wandb = _import_wandb()
        self.cfg, self.run_dir = cfg, Path(run_dir)
        if (cfg.wandb_mode or os.environ.get("WANDB_MODE", "online")) == "online":
            with self._errors("W&B cannot log in"):
                self._wandb.login(verify=False)  # reads the key; no network
        path = self.run_dir / WANDB_FILE
        saved = json.loads(path.read_text()) if path.is_file() else {}
        self.id: str = saved.get("id") or uuid.uuid4().hex[:12]
        self.logged_through: int | None = saved.get("logged_through")
        self.run: Any = None

    def skip_through(self, step: int) -> None:
        """W&B already holds the rows up to `step` (an earlier session sent them)."""
        held = self.logged_through
        self.logged_through = step if held is None else max(step, held)

    def start(self) -> None:
        """Start (or continue) the W&B run and record its id in wandb.json.

        Raises:
            MbdpoError: W&B could not start (e.g. online, the server cannot be reached);
                nothing but the run directory's lock was written.
        """
        cfg = self.cfg
        with self._errors("W&B could not start the run"):
            self.run = self._wandb.init(
                project=cfg.wandb_project,
                entity=cfg.wandb_entity,
                group=cfg.wandb_group,
                mode=cfg.wandb_mode,
                id=self.id,
                name="/".join(self.run_dir.resolve().parts[-2:]),
                job_type=cfg.mode,
                dir=os.environ.get("WANDB_DIR", str(self.run_dir)),
                resume="allow",
                reinit="create_new",
            )
            self.run.config.update(config_to_dict(cfg), allow_val_change=True)
        path = self.run_dir / WANDB_FILE
        tmp = path.with_name(f".{WANDB_FILE}.tmp")
        tmp.write_text(json.dumps({"id": self.id, "logged_through": self.logged_through}) + "\n")
        os.replace(tmp, path)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn a W&B error into a one-line MbdpoError that says how to go on."""
        try:
            yield
        except self._wandb.Error as err:
            raise MbdpoError(
                f"{what} ({_one_line(err)}). To track without a network or login, give "
                "wandb_mode=offline (upload later with `wandb sync`); to log in, run "
                "`wandb login` or set WANDB_API_KEY."
            ) from None

    def log(self, step: int, scalars: dict[str, float]) -> None:
        """Send one row's numbers at `step` (rows W&B already holds are skipped)."""
        if self.logged_through is None or step > self.logged_through:
            self.run.log(scalars, step=step)

    def finish(self, exit_code: int, upload: bool) -> None:
        """Upload the artefacts (when `upload`) and end the W&B run with `exit_code`.

        Raises:
            MbdpoError: an artefact could not be added or W&B could not finish; the run
                directory is complete either way.
        """
        try:
            if upload:
                self._upload()
            self.run.finish(exit_code=exit_code)
        except Exception as err:  # any failure of the W&B client: said in one line
            raise MbdpoError(
                f"W&B could not finish run {self.id} ({type(err).__name__}: "
                f"{_one_line(err)}); the run directory {self.run_dir} is complete."
            ) from None

    def _upload(self) -> None:
        wandb = self._wandb
        files = wandb.Artifact(f"{self.id}-files", type="run-files")
        for path in run_files(self.run_dir):
            files.add_file(str(path), name=str(path.relative_to(self.run_dir)))
        self.run.log_artifact(files)
        newest = latest_checkpoint(self.run_dir)
        if newest is None:
            return
        model = wandb.Artifact(
            f"{self.id}-model", type="model", metadata={"step": int(newest.name[5:])}
        )
        for suffix in (".safetensors", ".json"):
            model.add_file(str(newest.with_suffix(suffix)))
        self.run.log_artifact(model, aliases=["latest", newest.name])
