"""Plain-text listings of what a run can be given: config keys, presets, tasks, planners.

Each listing is read from the facts' one home (default.yaml, presets.py, mbdpo_core.tasks),
so it cannot drift from what `load_config` accepts. `apps/train list <topic>` prints them.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable

from .. import tasks as task_registry
from ..errors import ConfigError, suggest
from .load import CHOICES, DEFAULT_YAML
from .presets import MODEL_SIZES, PRESET_CHOICES, PRESET_SUMMARIES, PRESETS

_SECTION = re.compile(r"^# --- (.+?) ---\s*$")
_KEY = re.compile(r"^(\w+):\s*(\S+)\s+#\s*(.*?)\s*$")

PLANNERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "diffusion": (
        "MBDPO: reverse diffusion over action sequences, each step's score estimated from the "
        "world model's values of sampled sequences (or by the score network)",
        (
            "horizon",
            "diffusion_steps",
            "diffusion_beta0",
            "diffusion_betaT",
            "diffusion_num_samples",
            "diffusion_num_elites",
            "diffusion_num_pi_trajs",
            "diffusion_temperature",
            "diffusion_action_noise",
            "use_score_network",
            "score_planning",
            "score_only_inference",
        ),
    ),
    "mppi": (
        "TD-MPC2's MPPI: a Gaussian over action sequences refitted to the elites each iteration",
        (
            "horizon",
            "iterations",
            "num_samples",
            "num_elites",
            "num_pi_trajs",
            "min_std",
            "max_std",
            "temperature",
        ),
    ),
    "policy": ("the policy prior's action alone, no search", ()),
}
"""planner -> (what it does, the keys that tune it) (docs/method.md#diffusion-planner, #mppi,
#policy-planner)."""


def yaml_sections() -> list[tuple[str, list[tuple[str, str, str]]]]:
    """default.yaml as [(section title, [(key, default as written, comment)])], in file order."""
    sections: list[tuple[str, list[tuple[str, str, str]]]] = []
    for line in DEFAULT_YAML.read_text().splitlines():
        if header := _SECTION.match(line):
            sections.append((header.group(1), []))
        elif entry := _KEY.match(line):
            sections[-1][1].append((entry.group(1), entry.group(2), entry.group(3)))
    return sections


def _defaults() -> dict[str, str]:
    return {key: value for _, entries in yaml_sections() for key, value, _ in entries}


def _keys() -> str:
    defaults = _defaults()
    width = max(len(f"{key}={value}") for key, value in defaults.items()) + 2
    lines = [f"Config keys ({DEFAULT_YAML.name}): give any as key=value; shown with defaults."]
    for title, entries in yaml_sections():
        lines += ["", f"{title}:"]
        lines += [f"  {f'{k}={v}':<{width}}{comment}" for k, v, comment in entries]
    return "\n".join(lines)


def _assignments(values: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in values.items())


def _presets() -> str:
    lines = [f"Presets (preset=NAME, default {_defaults()['preset']}; explicit keys win):"]
    for name in PRESET_CHOICES:
        lines.append(f"  {name:<7}{PRESET_SUMMARIES[name]}")
        if PRESETS.get(name):
            lines += _wrap(_assignments(PRESETS[name]), 9)
    lines += ["", "Model sizes (model_size=N, about N million parameters; explicit keys win):"]
    lines += [f"  {size:<5}{_assignments(keys)}" for size, keys in MODEL_SIZES.items()]
    return "\n".join(lines)


def _wrap(text: str, indent: int, first: str = "") -> list[str]:
    """`first` + `text` wrapped at 96 columns; lines after the first indented by `indent`."""
    return textwrap.wrap(
        text,
        96,
        initial_indent=first or " " * indent,
        subsequent_indent=" " * indent,
        break_on_hyphens=False,
        break_long_words=False,
    )


def _suite_line(suite: str, specs: list[task_registry.TaskSpec]) -> str:
    lengths = sorted({s.episode_length for s in specs})
    repeats = sorted({s.action_repeat for s in specs})
    length = "-".join(map(str, lengths)) if len(lengths) > 1 else str(lengths[0])
    up_to = "up to " if any(s.episodic for s in specs) else ""
    obs = "state|rgb" if suite in task_registry.RGB_SUITES else "state"
    return (
        f"{suite} ({len(specs)} tasks, {up_to}{length} steps per episode, action repeat "
        f"{'/'.join(map(str, repeats))}, obs={obs}):"
    )


def _tasks() -> str:
    suites: dict[str, list[task_registry.TaskSpec]] = {}
    for spec in task_registry.TASKS.values():
        suites.setdefault(spec.suite, []).append(spec)
    lines = [
        "Tasks (task=NAME). obs=rgb needs a "
        f"{' or '.join(task_registry.RGB_SUITES)} task; every task has obs=state."
    ]
    for suite, specs in suites.items():
        lines += ["", _suite_line(suite, specs)]
        if suite == "dmcontrol":  # grouped by domain (the DMControl model)
            domains: dict[str, list[str]] = {}
            for spec in specs:
                domains.setdefault(spec.source.split("/")[0], []).append(spec.name)
            width = max(map(len, domains)) + 2
            for domain, names in domains.items():
                lines += _wrap(" ".join(names), width + 2, f"  {domain:<{width}}")
        else:
            lines += _wrap(" ".join(s.name for s in specs), 2)
    lines += ["", "Multi-task sets (task=NAME: one model over all their tasks, obs=state):"]
    for name in task_registry.MULTITASK_SETS:
        members = [task_registry.TASKS[t].suite for t in task_registry.TASK_SETS[name]]
        counts = " + ".join(f"{members.count(s)} {s}" for s in dict.fromkeys(members))
        lines.append(f"  {name}  {len(members)} tasks ({counts}); task id = position in the set")
    lines += ["", "Task groups (not a task= value; run their tasks one at a time):"]
    for name, members in task_registry.TASK_SETS.items():
        if name in task_registry.MULTITASK_SETS:
            continue
        if name in suites and members == [s.name for s in suites[name]]:
            lines.append(f"  {name} ({len(members)}): every {name} task")
        else:
            lines += _wrap(" ".join(members), 4, f"  {name} ({len(members)}): ")
    return "\n".join(lines)


def _planners() -> str:
    defaults = _defaults()
    lines = [f"Planners (planner=NAME, default {defaults['planner']}; the keys that tune each):"]
    for name in CHOICES["planner"]:
        summary, keys = PLANNERS[name]
        lines += _wrap(f"{summary}.", 13, f"  {name:<11}")
        if keys:
            lines += _wrap(_assignments({k: defaults[k] for k in keys}), 13, f"{'':13}")
    return "\n".join(lines)


_WRITERS: dict[str, Callable[[], str]] = {
    "keys": _keys,
    "presets": _presets,
    "tasks": _tasks,
    "planners": _planners,
}
TOPICS = tuple(_WRITERS)
"""The topics `describe` lists."""


def describe(topic: str) -> str:
    """The listing of `topic` (one of TOPICS) as plain text, lines under 100 characters where
    the yaml's comments allow.

    Raises ConfigError naming the valid topics for any other topic.
    """
    if topic not in _WRITERS:
        raise ConfigError(
            f"Unknown topic {topic!r}.{suggest(topic, TOPICS)} Valid topics: {', '.join(TOPICS)}."
        )
    return _WRITERS[topic]()
