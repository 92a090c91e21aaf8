"""The two backends are twins: the same modules, public names and signatures, each step in the
same place (docs/design.md#mirrored-backends).

Read from the sources (ast), not by importing, so the check needs neither framework:
- the module set of mbdpo_torch and mbdpo_jax (files, relative to the package), except the one
  declared torch-only module;
- per module, the public (no leading underscore) top-level functions, classes and constants;
- per function and method: parameter names, kinds, order and default values (not annotations);
- per class: its public methods (torch's `forward` counts as `__call__`), `__init__`, and its
  annotated fields (dataclasses).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "packages"
PACKAGES = {
    "torch": ROOT / "mbdpo-torch" / "src" / "mbdpo_torch",
    "jax": ROOT / "mbdpo-jax" / "src" / "mbdpo_jax",
}
TORCH_ONLY = {"fused.py": "fused CPU kernels of the planner and the update (torch only)"}
"""Modules that exist in one backend only, with the reason. Nothing else may differ."""


def _signature(fn: ast.FunctionDef) -> tuple:
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    defaults = [None] * (len(positional) - len(a.defaults)) + [ast.unparse(d) for d in a.defaults]
    params = [(p.arg, "positional", d) for p, d in zip(positional, defaults, strict=True)]
    if a.vararg:
        params.append((a.vararg.arg, "*args", None))
    for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        params.append((p.arg, "keyword", None if d is None else ast.unparse(d)))
    if a.kwarg:
        params.append((a.kwarg.arg, "**kwargs", None))
    return tuple(params)


def _class_api(cls: ast.ClassDef) -> dict[str, tuple]:
    api: dict[str, tuple] = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = "__call__" if node.name == "forward" else node.name
            if not name.startswith("_") or name in ("__init__", "__call__"):
                api[f"{cls.name}.{name}"] = _signature(node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if not node.target.id.startswith("_"):
                api[f"{cls.name}.{node.target.id}"] = ("field",)
    return api


def module_api(path: Path) -> dict[str, tuple]:
    """Public name -> signature (functions, methods), ("class",) or ("constant",)."""
    api: dict[str, tuple] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if not node.name.startswith("_"):
                api[node.name] = _signature(node)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            api[node.name] = ("class",)
            api.update(_class_api(node))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and not t.id.startswith("_"):
                    api[t.id] = ("constant",)
    return api


def modules(package: Path) -> set[str]:
    return {str(p.relative_to(package)) for p in package.rglob("*.py")}


def mirror_differences(torch_pkg: Path, jax_pkg: Path) -> list[str]:
    """Every difference between the two packages, one line each (empty when they mirror)."""
    problems = []
    torch_mods, jax_mods = modules(torch_pkg) - set(TORCH_ONLY), modules(jax_pkg)
    problems += [f"module {m} only in mbdpo_torch" for m in sorted(torch_mods - jax_mods)]
    problems += [f"module {m} only in mbdpo_jax" for m in sorted(jax_mods - torch_mods)]
    for mod in sorted(torch_mods & jax_mods):
        t, j = module_api(torch_pkg / mod), module_api(jax_pkg / mod)
        problems += [f"{mod}: {n} only in mbdpo_torch" for n in sorted(set(t) - set(j))]
        problems += [f"{mod}: {n} only in mbdpo_jax" for n in sorted(set(j) - set(t))]
        for name in sorted(set(t) & set(j)):
            if t[name] != j[name]:
                problems.append(f"{mod}: {name} differs: torch {t[name]} vs jax {j[name]}")
    return problems


def test_backends_mirror_each_other():
    problems = mirror_differences(PACKAGES["torch"], PACKAGES["jax"])
    assert not problems, "mbdpo_torch and mbdpo_jax differ:\n" + "\n".join(problems)


def test_torch_only_modules_exist():
    for name in TORCH_ONLY:
        assert (PACKAGES["torch"] / name).is_file(), f"declared torch-only {name} is missing"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ("def two_hot_inv(logits, cfg):\n    pass\n", None),
        ("def two_hot_inverse(logits, cfg):\n    pass\n", "two_hot_inv only in mbdpo_jax"),
        ("def two_hot_inv(cfg, logits):\n    pass\n", "two_hot_inv differs"),
        ("def two_hot_inv(logits, cfg=None):\n    pass\n", "two_hot_inv differs"),
    ],
)
def test_a_rename_or_a_changed_signature_is_reported(tmp_path, edit, expected):
    """The check itself: two tiny packages that differ in one function."""
    for name in ("torch", "jax"):
        (tmp_path / name).mkdir()
    (tmp_path / "torch" / "math.py").write_text(edit)
    (tmp_path / "jax" / "math.py").write_text("def two_hot_inv(logits, cfg):\n    pass\n")
    problems = mirror_differences(tmp_path / "torch", tmp_path / "jax")
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems
