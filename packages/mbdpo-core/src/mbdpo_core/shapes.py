"""The one vocabulary of shape letters, and the shape check used at package boundaries
(docs/design.md#shapes).

A shape spec is a string of letters separated by spaces, e.g. "H+1 B O" or "Nq H B M"; each
letter is a dimension named below, `H+1` is H plus one, and an integer stands for itself.
"""

from __future__ import annotations

from typing import Any

from .errors import ShapeError

LETTERS = {
    "B": "batch: sub-trajectories per update",
    "H": "horizon: planning and training steps",
    "A": "action width (max over tasks)",
    "O": "observation width (state; rgb is C x 64 x 64)",
    "Z": "latent width (latent_dim)",
    "E": "task-embedding width (task_dim; 0 single-task)",
    "M": "hidden width of an MLP (mlp_dim)",
    "Nq": "Q-ensemble members (num_q)",
    "N": "candidate action sequences valued per planner step",
    "P": "policy-prior rollouts among the candidates",
    "T": "noise levels of the diffusion schedule",
    "I": "planner iterations (diffusion: reverse steps T-1 .. 1)",
    "S": "Monte-Carlo samples of a score target",
    "Kb": "value and reward bins (num_bins)",
    "C": "channels of an rgb observation or conv layer",
    "Mt": "tasks of a multi-task agent",
}
"""Letter -> meaning. Every docstring states shapes in these letters."""


def expected_shape(spec: str, **dims: int) -> tuple[int, ...]:
    """The shape a spec names for the given letter values, e.g.
    expected_shape("H+1 B O", H=3, B=256, O=17) == (4, 256, 17)."""
    out = []
    for token in spec.split():
        letter, plus, extra = token.partition("+")
        if letter.isdigit():
            size = int(letter)
        elif letter in LETTERS:
            if letter not in dims:
                raise KeyError(f"shape spec {spec!r} needs {letter}")
            size = dims[letter]
        else:
            raise KeyError(
                f"unknown shape letter {letter!r} in {spec!r}; valid: {', '.join(LETTERS)}"
            )
        out.append(size + (int(extra) if plus else 0))
    return tuple(out)


def check_shape(name: str, array: Any, spec: str, **dims: int) -> None:
    """Raise ShapeError naming `name`, its shape and the expected spec if they differ."""
    expected = expected_shape(spec, **dims)
    shape = tuple(array.shape)
    if shape != expected:
        values = ", ".join(f"{k}={v}" for k, v in dims.items())
        raise ShapeError(f"{name} has shape {shape}, expected [{spec}] = {expected} ({values}).")
