"""The documentation site (mkdocs.yml, docs_hooks.py; docs/README.md#the-site).

- `mkdocs build --strict` succeeds (a broken link, anchor or page outside the nav fails it), and
  its generated configuration page lists every key of default.yaml, in the file's order, with a
  default that YAML reads back as the key's default (read here with PyYAML, not with the
  hook's parser).
- The parameter counts of the models page equal those of the PyTorch WorldModel built at each
  model size (on the CPU for sizes 1 and 5; on the meta device, shapes without memory, for the
  large ones).
"""

from __future__ import annotations

import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from mbdpo_core.config.load import load_config
from mbdpo_core.config.presets import MODEL_SIZES
from mbdpo_torch import WorldModel

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_YAML = ROOT / "packages/mbdpo-core/src/mbdpo_core/config/default.yaml"


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _hooks()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built as CI builds it."""
    out = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def _rows(page: Path) -> list[list[str]]:
    """The cells of every table body row of an HTML page, as text."""
    text = page.read_text(encoding="utf-8")
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", text, re.S):
        cells = re.findall(r"<td>(.*?)</td>", row, re.S)
        if cells:
            rows.append([html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
    return rows


def test_generated_pages_are_not_committed() -> None:
    for name in hooks.GENERATED:
        assert not (ROOT / "docs" / name).exists(), f"docs/{name} is generated; do not commit it"


def test_configuration_page_lists_every_key(site: Path) -> None:
    defaults = yaml.safe_load(DEFAULT_YAML.read_text())
    rows = _rows(site / "configuration" / "index.html")
    assert [row[0] for row in rows] == list(defaults)
    for key, default, meaning in rows:
        assert yaml.safe_load(default) == defaults[key], key
        assert meaning, f"{key} has no comment"
    sections = re.findall(r"^# --- .+ ---$", DEFAULT_YAML.read_text(), re.M)
    page = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    assert len(re.findall(r"<h2 id=", page)) == len(sections)


def test_repository_links_become_site_links(site: Path) -> None:
    """docs/README.md links ../README.md and default.yaml; the site links their pages."""
    index = (site / "index.html").read_text(encoding="utf-8")
    assert 'href="repository/"' in index and (site / "repository" / "index.html").is_file()
    assert 'href="configuration/"' in index and 'href="models/"' in index


def _torch_count(overrides: list[str], size: int, skip: tuple[str, ...] = ()) -> int:
    cfg = load_config([*overrides, f"model_size={size}", "preset=paper"])
    with torch.device("cpu" if size <= 5 else "meta"):
        model = WorldModel(cfg)
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if name.split(".")[1] not in ("target_q", *skip)
    )


@pytest.fixture(scope="module")
def models_page() -> str:
    return hooks.models_page()


@pytest.mark.parametrize("size", list(MODEL_SIZES))
def test_parameter_counts_equal_the_torch_model(size: int, models_page: str) -> None:
    row = next(line for line in models_page.splitlines() if line.startswith(f"| {size} |"))
    shown = [cell.strip() for cell in row.strip("|").split("|")][-len(hooks.COUNTED) - 1 :]
    expected = [_torch_count(overrides, size) for overrides in hooks.COUNTED.values()]
    expected.append(_torch_count(hooks.COUNTED["mt80"], size, skip=("energy", "score")))
    computed = [hooks.parameter_count(o, size) for o in hooks.COUNTED.values()]
    computed.append(hooks.parameter_count(hooks.COUNTED["mt80"], size, heads="tdmpc2"))
    assert computed == expected
    assert shown == [f"{n / 1e6:.2f} M" for n in expected]
