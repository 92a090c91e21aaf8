"""A documented command as CI runs it: the same program and keys, plus a small budget.

The budget is appended (the apps take the last of two values of a key, argparse the last of two
options), so the command's own text is kept as written. What it changes:

- apps/train, online: 500 random seeding steps (one DMControl episode, five Meta-World ones) and
  10 learning steps; fine-tuning (its own `seed_steps=0`): 10 learning steps. Both: one
  evaluation of one episode at the end, in the training process; a checkpoint only at the end.
  Widths and planner sizes shrink to a tiny model (`video_every` with an evaluation filmed at
  step 0 and at the end; the other keys of the command, such as `batch_size`, `preset`,
  `model_size`, `planner`, `obs`, are kept; the widths `model_size` sets are overridden).
  Fine-tuning keeps the checkpoint's widths.
- apps/train mode=offline: 2 updates, one evaluation of one episode of one task (walker-walk)
  unless the command names `eval_tasks`.
- apps/train resume=true: only `steps`, 10 more than the checkpoint resumed from.
- apps/evaluate: one episode per task, in the evaluating process (replacing the command's own
  `eval_episodes`: apps/evaluate refuses a key given twice); `overwrite=true`, because a
  stand-in checkpoint (stand_ins.py) can be the newest of a run another command scores too; a
  published checkpoint's planner sizes as above (a native checkpoint has its own).
- apps/sweep: each training as apps/train online, above.
- `uv sync --extra X`: `--dry-run`: it resolves the extra against uv.lock and lists what it
  would change, without the exact sync that would remove the other extras from CI's
  environment (synced with --all-extras).
"""

from __future__ import annotations

import re
import shlex

TINY_WIDTHS = ("mlp_dim=32", "enc_dim=32", "latent_dim=16", "num_q=2", "task_dim=8")
"""A model small enough for CI (explicit widths win over `model_size`)."""
TINY_PLANNER = (
    "diffusion_steps=3",
    "diffusion_num_samples=16",
    "diffusion_num_elites=4",
    "diffusion_num_pi_trajs=2",
    "num_samples=16",
    "num_elites=4",
    "num_pi_trajs=2",
    "iterations=2",
)
"""Planner sizes small enough for CI (the planner itself is the command's)."""
EVAL_ONCE = ("eval_freq=0", "eval_episodes=1", "eval_workers=1", "save_every=0")
STEPS = 510
"""Environment steps of an online run: one episode of seeding and 10 more."""
ONLINE = ("seed_steps=500", f"steps={STEPS}", *EVAL_ONCE)
FINETUNE = ("steps=10", *EVAL_ONCE)
"""A fine-tuning run learns from its first step: 10 steps, each with an update."""
OFFLINE = ("steps=2", "log_freq=1", *EVAL_ONCE)
EVALUATE = ("eval_episodes=1", "eval_workers=1", "overwrite=true")
OFFLINE_EVAL_TASK = "eval_tasks=walker-walk"
APP = re.compile(r"^apps/(\w+)(?:/__main__\.py)?$")


def keys(tokens: list[str]) -> dict[str, str]:
    """key -> value of the `key=value` arguments (the last one wins, as in the apps)."""
    return dict(t.split("=", 1) for t in tokens if re.match(r"^[\w.]+=", t))


def train_budget(given: dict[str, str], resume_step: int | None) -> list[str]:
    """Budget keys for apps/train given its `key=value` arguments; `resume_step` is the step of
    the checkpoint a `resume=true` command continues from."""
    if given.get("resume") == "true":
        return [f"steps={resume_step + 10}"]
    mode = given.get("mode", "online")
    if mode == "offline":
        out = [*OFFLINE, *TINY_WIDTHS, *TINY_PLANNER]
        if "eval_tasks" not in given:
            out.append(OFFLINE_EVAL_TASK)
        return out
    out = [*(FINETUNE if mode == "finetune" else ONLINE), *TINY_PLANNER]
    if "video_every" in given:  # a multiple of eval_freq: evaluations (filmed) at 0 and the end
        out += [f"eval_freq={STEPS}", f"video_every={STEPS}"]
    if mode != "finetune":
        out += TINY_WIDTHS[:4]
    if "batch_size" not in given:
        out.append("batch_size=16")
    return out


def budgeted(text: str, resume_step: int | None = None) -> str:
    """The command line CI runs for documented command `text` (one line; scripts run as they
    are)."""
    if "\n" in text:
        return text
    tokens = shlex.split(text)
    if tokens[:3] == ["uv", "sync", "--extra"]:
        return f"{text} --dry-run"
    app = next((APP.match(t) for t in tokens if APP.match(t)), None)
    if app:
        name, given = app.group(1), keys(tokens)
        if name == "train" and "list" not in tokens:
            extra = train_budget(given, resume_step)
        elif name == "sweep":
            extra = [*ONLINE, *TINY_WIDTHS[:4], *TINY_PLANNER, "batch_size=16"]
        elif name == "evaluate":  # it refuses a key given twice: its own values give way
            published = given.get("format", "native") != "native"
            extra = [*EVALUATE, *(TINY_PLANNER if published else ())]
            for key in keys(extra):
                text = re.sub(rf"\s{key}=\S+", "", text)
        else:
            extra = []
        return " ".join([text, *map(shlex.quote, extra)])
    return text
