"""The shell commands of the repository's Markdown: what a reader is told to type.

Which fences hold commands: ```bash, ```sh, ```shell and ```console (in a console block only the
lines after a `$ ` prompt). ```text, ```python and every other tag are documentation. An untagged
fence holds commands when its first line starts with a program a reader runs (`uv`, `pip`,
`python`, ...); pseudo-code and diagrams (docs/method.md, docs/design.md) do not.

How a block becomes commands: `# ...` comments (outside quotes) are removed, backslash
continuations joined, blank lines dropped. A block whose lines share shell state (a variable
assignment, `export`, `cd`, `source` / `.`, a `for` / `while` / `if`) is one command, a script
run as a whole; otherwise each line is one command (`a && b` stays one line, one command).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

COMMAND_FENCES = {"bash", "sh", "shell", "console"}
PROGRAMS = {"uv", "pip", "python", "python3", "torchrun", "wget", "curl", "mkdir", "cp", "git"}
"""First words that make an untagged fence a command block."""
DOCUMENTS = (
    "README.md",
    "docs/**/*.md",
    "packages/*/README.md",
    "apps/*/README.md",
)
"""The Markdown files read, as globs under the repository root: the user's documentation.
benchmarks/README.md is left out: its commands measure for minutes by design (at their smallest
settings they took 400 s of CI), and what they run is the agent's act and update, which the
suites test."""

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
ASSIGNMENT = re.compile(r"""^[A-Za-z_]\w*=(?:\$\([^)]*\)|"[^"]*"|'[^']*'|\S*)$""")
"""A line that only sets a shell variable (`V=$(mktemp -d)`), for the lines after it."""
STATEFUL = re.compile(r"(?:^|[;&|]\s*)(?:export|cd|source|\.|for|while|if)\s")
"""A builtin whose effect outlives its line (`. .venv/bin/activate`, `cd`, a loop)."""


@dataclass(frozen=True)
class Command:
    """One command of a document: its text (one line, or a script) and where it starts."""

    path: str  # relative to the repository root
    line: int  # 1-based line of its first line
    text: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def strip_comment(line: str) -> str:
    """`line` without a `#` comment that starts outside quotes (after a blank or at the start)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def fenced_blocks(markdown: str) -> list[tuple[str, int, list[str]]]:
    """(tag, line of the first body line, body lines) of every fenced block."""
    blocks, lines, i = [], markdown.splitlines(), 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, tag = opening.groups()
        body_start, i = i + 1, i + 1
        while i < len(lines) and not lines[i].strip().startswith(fence[0] * len(fence)):
            i += 1
        body = [line.removeprefix(indent) for line in lines[body_start:i]]
        blocks.append((tag.lower(), body_start + 1, body))
        i += 1
    return blocks


def logical_lines(tag: str, first: int, body: list[str]) -> list[tuple[int, str]]:
    """(line number, text) of each command line: prompts and comments stripped, continuations
    joined, blank lines and a console block's output lines dropped."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(body, first):
        if pending is None and tag == "console":
            if not raw.lstrip().startswith("$ "):
                continue
            raw = raw.lstrip()[2:]
        text = strip_comment(raw)
        if pending is not None:
            number, text = pending[0], f"{pending[1]} {text.strip()}"
        if text.endswith("\\"):
            pending = (number, text[:-1].rstrip())
            continue
        pending = None
        if text.strip():
            out.append((number, text.strip()))
    if pending is not None:
        out.append(pending)
    return out


def is_command_block(tag: str, lines: list[tuple[int, str]]) -> bool:
    if tag in COMMAND_FENCES:
        return True
    return tag == "" and bool(lines) and lines[0][1].split()[0] in PROGRAMS


def block_commands(path: str, tag: str, first: int, body: list[str]) -> list[Command]:
    """The commands of one fenced block (none when it is not a command block)."""
    lines = logical_lines(tag, first, body)
    if not is_command_block(tag, lines):
        return []
    if any(ASSIGNMENT.match(t) or STATEFUL.search(t) for _, t in lines):
        return [Command(path, lines[0][0], "\n".join(text for _, text in lines))]
    return [Command(path, number, text) for number, text in lines]


def document_paths(root: Path) -> list[Path]:
    """Every Markdown file of DOCUMENTS under `root`, in DOCUMENTS order, each once."""
    seen: dict[Path, None] = {}
    for pattern in DOCUMENTS:
        for path in sorted(root.glob(pattern)):
            if not any(part.startswith(".") for part in path.relative_to(root).parts):
                seen.setdefault(path, None)
    return list(seen)


def doc_commands(root: Path) -> list[Command]:
    """Every command of every document, in document order."""
    commands = []
    for path in document_paths(root):
        relative = path.relative_to(root).as_posix()
        for tag, first, body in fenced_blocks(path.read_text()):
            commands.extend(block_commands(relative, tag, first, body))
    return commands
