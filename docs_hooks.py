"""MkDocs hooks of the documentation site (mkdocs.yml, docs/README.md#the-site).

- Two pages are generated at build time from their one home, never committed:
  `configuration.md` from default.yaml (read by mbdpo_core.config.describe, as
  `apps/train list keys` prints it) and `models.md` from mbdpo_core.config.presets, with the
  parameter counts of each model size computed from the canonical shapes (mbdpo_core.params).
- The repository's READMEs become pages under `repository/`, and relative links are rewritten
  from repository paths to site pages: a page links `../README.md` or a source file such as
  default.yaml as it should on GitHub, and the site links the matching page.
"""

from __future__ import annotations

import functools
import posixpath
import re
from pathlib import Path

import numpy as np
from mbdpo_core.config.describe import yaml_sections
from mbdpo_core.config.load import load_config
from mbdpo_core.config.presets import MODEL_SIZES, PRESET_SUMMARIES, PRESETS
from mbdpo_core.params import param_shapes
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent
CONFIG_DIR = "packages/mbdpo-core/src/mbdpo_core/config"
"""Where default.yaml and presets.py are, from the repository root."""
REPOSITORY_PAGES = ("README.md", "benchmarks/README.md", "packages/*/README.md")
"""Repository files (globs from the root) shown on the site under `repository/<path>`."""
COUNTED = {
    "walker-walk": ["task=walker-walk"],
    "mt30": ["task=mt30"],
    "mt80": ["task=mt80"],
}
"""Column of the parameter table -> the config overrides of the model it counts."""
_LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def parameter_count(overrides: list[str], size: int, heads: str = "all") -> int:
    """Trained parameters (no target Q copy) of the model of `overrides` at `size`; heads="tdmpc2"
    counts only TD-MPC2's heads (no energy head F, no score network), whose size names the preset.
    """
    cfg = load_config([*overrides, f"model_size={size}", "preset=paper"])
    shapes = param_shapes(cfg, target=False)
    skip = ("energy", "score") if heads == "tdmpc2" else ()
    return sum(int(np.prod(s)) for name, s in shapes.items() if name.split(".")[0] not in skip)


def _text(comment: str) -> str:
    """A yaml comment as a markdown table cell: `|` escaped, `<` kept out of raw HTML."""
    parts = comment.split("`")
    for i in range(0, len(parts), 2):  # outside code spans
        parts[i] = parts[i].replace("<", "&lt;")
    return "`".join(parts).replace("|", "\\|")


def configuration_page() -> str:
    """Markdown of every key of default.yaml: default and comment, grouped as the file groups
    them."""
    lines = [
        "# Configuration reference",
        "",
        f"Every key of `{CONFIG_DIR}/default.yaml`, generated from that file when the site is "
        "built (in a checkout: `uv run apps/train list keys`). Give any key as `key=value` to "
        "`apps/train` (or to `apps/sweep`, which passes it to every training). Precedence: "
        "these defaults < `preset` "
        "([models](models.md)) < the `model_size` preset < your `key=value` overrides. A wrong "
        "key, value or combination is a one-line error naming the key, the value and what is "
        "valid, before anything is written.",
    ]
    for title, entries in yaml_sections():
        lines += ["", f"## {title[0].upper()}{title[1:]}", "", "| key | default | meaning |"]
        lines.append("|---|---|---|")
        lines += [f"| `{key}` | `{value}` | {_text(text)} |" for key, value, text in entries]
    return "\n".join(lines) + "\n"


def models_page() -> str:
    """Markdown of the presets and the model sizes with their parameter counts."""
    lines = [
        "# Presets and model sizes",
        "",
        "Generated from `mbdpo_core.config.presets` when the site is built (in a checkout: "
        "`uv run apps/train list presets`). Explicit `key=value` overrides win over both.",
        "",
        "## Presets",
        "",
        "| preset | what it is for | what it sets |",
        "|---|---|---|",
    ]
    for name, summary in PRESET_SUMMARIES.items():
        sets = " ".join(f"`{k}={v}`" for k, v in PRESETS.get(name, {}).items()) or "(see paper/cpu)"
        lines.append(f"| `{name}` | {summary} | {sets} |")
    arch = list(next(iter(MODEL_SIZES.values())))
    columns = [f"`{c}`" for c in COUNTED] + ["`mt80`, TD-MPC2's heads"]
    lines += [
        "",
        "## Model sizes",
        "",
        "`model_size=N` sets the architecture keys below; the size names TD-MPC2's model of the "
        "same widths on mt80 (its heads only, the last column). MBDPO adds the energy head F and "
        "the score network. Parameters in millions, trained ones only (the target Q ensemble, a "
        "copy of the Q ensemble, is not counted), computed from the canonical parameter shapes "
        "(`mbdpo_core.params.param_shapes`, the shapes both backends build) for a state task "
        "(walker-walk: observation 24, action 6) and the multi-task sets at their published "
        "widths (`task_dim` 64 for mt30, 96 for mt80).",
        "",
        "| `model_size` | " + " | ".join(f"`{k}`" for k in arch) + " | " + " | ".join(columns),
        "|---" * (1 + len(arch) + len(columns)) + "|",
    ]
    for size, keys in MODEL_SIZES.items():
        counts = [parameter_count(o, size) for o in COUNTED.values()]
        counts.append(parameter_count(COUNTED["mt80"], size, heads="tdmpc2"))
        cells = [str(keys[k]) for k in arch] + [f"{c / 1e6:.2f} M" for c in counts]
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


GENERATED = {
    "configuration.md": (configuration_page, f"{CONFIG_DIR}/default.yaml"),
    "models.md": (models_page, f"{CONFIG_DIR}/presets.py"),
}
"""Generated page -> (its writer, the repository path of the file it is generated from)."""


@functools.cache
def _repository_pages() -> dict[str, str]:
    """Repository path -> site path of every README shown on the site."""
    paths = sorted({p for pattern in REPOSITORY_PAGES for p in ROOT.glob(pattern)})
    return {(rel := p.relative_to(ROOT).as_posix()): f"repository/{rel}" for p in paths}


def on_files(files: Files, config) -> Files:
    """Add the generated pages and the repository's READMEs to the site."""
    for name, (write, _) in GENERATED.items():
        files.append(File.generated(config, name, content=write()))
    for repo_path, site_path in _repository_pages().items():
        files.append(File.generated(config, site_path, abs_src_path=str(ROOT / repo_path)))
    return files


def site_link(target: str, page_repo_path: str, page_site_path: str) -> str:
    """A page's relative link, written for the repository, as a link between site pages:
    under docs/ -> that page; a shown README -> its `repository/` page; the file a generated
    page comes from -> that page. Any other link is returned unchanged (anchors and URLs stay
    valid; a relative link to another repository file then fails the strict build)."""
    path, hash_, anchor = target.partition("#")
    if not path or re.match(r"[a-z]+:", path) or path.startswith("/"):
        return target
    repo = posixpath.normpath(posixpath.join(posixpath.dirname(page_repo_path), path))
    sources = {source: name for name, (_, source) in GENERATED.items()}
    if repo.startswith("docs/"):
        site = repo.removeprefix("docs/")
    elif repo in sources:
        site = sources[repo]
    else:
        site = _repository_pages().get(repo)
    if site is None:
        return target
    return posixpath.relpath(site, posixpath.dirname(page_site_path) or ".") + hash_ + anchor


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Rewrite the page's relative links from repository paths to site pages."""
    site_path = page.file.src_uri
    if site_path.startswith("repository/"):
        repo_path = site_path.removeprefix("repository/")
    else:
        repo_path = f"docs/{site_path}"

    def rewrite(match: re.Match) -> str:
        return match.group(1) + site_link(match.group(2), repo_path, site_path) + match.group(3)

    return _LINK.sub(rewrite, markdown)
