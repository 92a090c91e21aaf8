"""The documentation in docs/ and the code's citations of it.

- Every citation of the form `docs/<page>.md#<anchor>` in a .py file under packages/, apps/,
  tests/ and benchmarks/ names a page that exists and one of its headings (GitHub anchors).
- No docstring or comment in the sources (packages/*/src, apps/, benchmarks/) refers to a
  document that is not in the repository: the design notes, the reference description of the
  published code, or a "spec".
- The pages keep the sections the code cites, and their own links resolve.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SKIP_DIRS = {".venv", "__pycache__", ".git", "node_modules", ".pytest_cache", ".ruff_cache"}

REQUIRED = {
    "method.md": (
        "world-model",
        "layers",
        "math",
        "task-embedding-and-action-masks",
        "initialisation",
        "td-targets",
        "world-model-loss",
        "energy-head",
        "score-network",
        "policy-objective",
        "update",
        "noise-schedule",
        "value-estimate",
        "diffusion-planner",
        "mppi",
        "policy-planner",
        "augmentation",
        "deviations-from-the-published-code",
    ),
    "design.md": (
        "packages-and-imports",
        "parity-contract",
        "mirrored-backends",
        "noise-bundles",
        "shapes",
        "agent-state-and-checkpoints",
        "loops",
        "runtime",
        "configuration",
        "evaluation",
    ),
    "data.md": (
        "the-datasets",
        "safe-reading",
        "conversion",
        "validation",
        "npz-chunks",
        "manifest",
        "reading",
        "published-checkpoints",
    ),
}
"""Page -> anchors the code cites; a page must keep every one of them."""

CITATION = re.compile(r"\bdocs/([A-Za-z0-9_./-]+?\.md)(?:#([A-Za-z0-9_-]*))?")

OUTSIDE = re.compile(
    r"""
      \bspec\s*["'“]                      # spec "Update"
    | \bspec\s*\(\s*["'“]                 # the spec ("Value estimate", ...)
    | \(spec\s                            # (spec section ...)
    | \bspec\s*§                          # spec §3
    | \bspec\s+sections?\b                # spec section 4
    | \b[Tt]he\s+spec\b(?!\s+of\b)         # where the spec has one (not: the spec of task x)
    | \banatomy\.md\b                     # ../shared/reference/anatomy.md
    | \banatomy\s*(?:§|\d|sections?\b)    # anatomy 4.2, anatomy §1, anatomy section 2
    | \b(?:ALGORITHM|ARCHITECTURE|STYLE)\.md\b
    | \bshared/(?:design|reference)\b
    """,
    re.VERBOSE,
)
"""Citation forms of documents outside the repository. Written so that the word `spec` as a
name (`TaskSpec`, `spec = tasks[...]`, `make_env(spec, seed)`) does not match."""


def _py_files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if not root.exists():
            continue
        for path in sorted(root.rglob("*.py")):
            if not SKIP_DIRS.intersection(path.relative_to(ROOT).parts):
                yield path


def _source_files() -> Iterator[Path]:
    """The shipped sources: packages/*/src, apps/, benchmarks/."""
    yield from _py_files(*sorted((ROOT / "packages").glob("*/src")))
    yield from _py_files(ROOT / "apps", ROOT / "benchmarks")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: markup removed, lowercase, punctuation other than
    '-' and '_' dropped, spaces turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images -> their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Anchors of every ATX heading of a markdown page (not in code fences), with GitHub's
    -1, -2, ... suffixes for repeated headings."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    fence: str | None = None
    for line in page.read_text(encoding="utf-8").splitlines():
        stripped = line.lstrip()
        marker = re.match(r"(`{3,}|~{3,})", stripped)
        if marker:
            if fence is None:
                fence = marker.group(1)[0]
            elif stripped.startswith(fence * 3):
                fence = None
            continue
        if fence is not None:
            continue
        match = re.match(r" {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = github_anchor(match.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def _check_target(
    page: Path, anchor: str | None, cache: dict[Path, set[str]], where: str, text: str
) -> str | None:
    """An error line for a citation of `page#anchor`, or None when it resolves."""
    if not page.is_file():
        name = _rel(page) if page.is_relative_to(ROOT) else str(page)
        return f"{where}: {text}: {name} does not exist"
    if anchor:
        if page not in cache:
            cache[page] = anchors(page)
        if anchor not in cache[page]:
            valid = ", ".join(sorted(cache[page]))
            return f"{where}: {text}: no heading with anchor #{anchor} (valid: {valid})"
    return None


def _comment_and_string_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every comment and string literal (docstrings included)."""
    source = path.read_text(encoding="utf-8")
    kinds = {tokenize.COMMENT, tokenize.STRING}
    kinds |= {getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):  # not valid Python: scan every line
        yield from enumerate(source.splitlines(), start=1)
        return
    for tok in tokens:
        if tok.type in kinds:
            for offset, line in enumerate(tok.string.splitlines()):
                yield tok.start[0] + offset, line


def test_code_citations_of_docs_resolve() -> None:
    """Every `docs/<page>.md#<anchor>` in packages/, apps/, tests/ and benchmarks/ resolves."""
    roots = [ROOT / "packages", ROOT / "apps", ROOT / "tests", ROOT / "benchmarks"]
    cache: dict[Path, set[str]] = {}
    errors, count = [], 0
    for path in _py_files(*roots):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in CITATION.finditer(line):
                count += 1
                page, anchor = match.groups()
                where = f"{_rel(path)}:{lineno}"
                error = _check_target(DOCS / page, anchor, cache, where, match.group(0))
                if error:
                    errors.append(error)
    assert not errors, f"{len(errors)} of {count} citations of docs/ do not resolve:\n" + "\n".join(
        errors
    )


def test_sources_cite_no_document_outside_the_repository() -> None:
    """Docstrings and comments of the sources cite docs/ only, never an outside document."""
    errors = []
    for path in _source_files():
        for lineno, line in _comment_and_string_lines(path):
            for match in OUTSIDE.finditer(line):
                errors.append(f"{_rel(path)}:{lineno}: {match.group(0)!r} in: {line.strip()}")
    assert not errors, (
        f"{len(errors)} references to documents outside the repository (cite "
        "docs/method.md#<anchor> or docs/design.md#<anchor> instead):\n" + "\n".join(errors)
    )


def test_pages_keep_the_cited_sections() -> None:
    """method.md and design.md have every section the code is allowed to cite."""
    missing = [
        f"docs/{page}#{anchor}"
        for page, required in REQUIRED.items()
        for anchor in required
        if not (DOCS / page).is_file() or anchor not in anchors(DOCS / page)
    ]
    assert not missing, "missing sections:\n" + "\n".join(missing)


def test_links_between_pages_resolve() -> None:
    """Relative links in docs/*.md (`page.md#anchor`, `#anchor`) point at existing headings."""
    link = re.compile(r"\]\(([^)\s]*)\)")
    cache: dict[Path, set[str]] = {}
    errors = []
    for page in sorted(DOCS.glob("*.md")):
        for lineno, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
            for match in link.finditer(line):
                target = match.group(1)
                if re.match(r"[a-z]+:", target):  # http:, mailto:
                    continue
                file_part, _, anchor = target.partition("#")
                path = (page.parent / file_part).resolve() if file_part else page
                where = f"{_rel(page)}:{lineno}"
                error = _check_target(path, anchor or None, cache, where, target)
                if error:
                    errors.append(error)
    assert not errors, "broken links in docs/:\n" + "\n".join(errors)


def test_github_anchor() -> None:
    assert github_anchor("Task embedding and action masks") == "task-embedding-and-action-masks"
    assert github_anchor("World-model loss") == "world-model-loss"
    assert github_anchor("MPPI") == "mppi"
    assert github_anchor("The `Agent` protocol, again!") == "the-agent-protocol-again"
    assert github_anchor("snake_case key") == "snake_case-key"
