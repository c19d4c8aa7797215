"""The examples of README.md and docs/*.md, read from the Markdown: what runs, how, and what is set aside.

Every fenced block carries a language. A ``python`` or ``bash`` block is preceded by one marker, an
HTML comment on the line just above the fence, that says what the test suite does with it:

``<!-- example: program -->``
    A whole program: run by itself, as a user would run the file.
``<!-- example: part NAME -->``
    One part of the page's program NAME: the parts are joined in page order and run as one
    program (the page reads as one story; one connection instead of one per block).
``<!-- example: doctest -->``
    ``>>>`` lines with their output, checked by :mod:`doctest` without a cluster.
``<!-- example: commands -->`` (``bash``)
    Shell commands a user runs on one machine, run as one bash script. ``commands with FILE from
    PAGE`` first writes the program of PAGE (its ``program`` block) as FILE, for commands that run it.
``<!-- example: fragment — REASON -->``
    Not run, for the reason given (an API listing, commands for a cloud account, ...).

``tests/unit/docs/test_doc_blocks.py`` fails on an unmarked block, a fragment without a reason or a
program that does not compile; ``tests/e2e/docs/test_docs_examples.py`` runs the rest.

A program's top-level ``print(...)`` whose line ends in a comment holding a Python literal
(``print(yr.get(ref))  # 3``) states its output: the run must print ``3`` there (in order with the
other stated lines; lines printed in between are allowed).
"""

from __future__ import annotations

import ast
import dataclasses
import io
import re
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGES = ("README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")))

RUN_LANGUAGES = ("python", "bash")
KINDS = ("program", "part", "doctest", "commands", "fragment")
_FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>[^`\s]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*example:\s*(?P<body>.*?)\s*-->\s*$")
_FRAGMENT = re.compile(r"^fragment\s*(?:—|-|:)\s*(?P<reason>.+)$")
_PART = re.compile(r"^part\s+(?P<name>[\w.-]+)$")
_COMMANDS = re.compile(r"^commands(?:\s+with\s+(?P<file>\S+)\s+from\s+(?P<page>\S+))?$")


class DocBlockError(ValueError):
    """A block of the docs that the suite cannot classify; the message says where and how to fix it."""


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced block of a page.

    Attributes:
        page: Path relative to the repository (``docs/user-guide.md``).
        line: Line of the opening fence (1-based).
        language: The fence's info string.
        text: The block's content, dedented by the fence's indentation.
        kind: One of :data:`KINDS`, or ``None`` for blocks that are not run (text, yaml, ...).
        name: The program name of a ``part``.
        reason: Why a ``fragment`` is not run.
        writes: ``(file, page)`` for ``commands with FILE from PAGE``.
    """

    page: str
    line: int
    language: str
    text: str
    kind: str | None = None
    name: str = ""
    reason: str = ""
    writes: tuple[str, str] | None = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclasses.dataclass(frozen=True)
class Program:
    """What one subprocess runs: a ``program`` block, or the ``part`` blocks of one name joined."""

    page: str
    name: str
    blocks: tuple[Block, ...]

    @property
    def where(self) -> str:
        return self.blocks[0].where

    @property
    def source(self) -> str:
        """The program, padded with blank lines so that its line N is line N of the page: a
        traceback of ``<page>.py``, line N points at the Markdown to fix."""
        lines: list[str] = []
        for b in self.blocks:
            lines += [""] * (b.line - len(lines))
            lines += b.text.rstrip("\n").split("\n")
        return "\n".join(lines) + "\n"

    @property
    def filename(self) -> str:
        return Path(self.page).name + ".py"

    def expected_output(self) -> list[str]:
        return stated_output(self.source)


def parse(page: str, text: str, errors: list[str] | None = None) -> list[Block]:
    """The fenced blocks of one page, with their markers.

    A bad block raises :class:`DocBlockError`, or, when ``errors`` is given, is left out and its
    message appended there (so one run reports every bad block).
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, indent, lang = i, len(m.group("indent")), m.group("lang")
        j = i + 1
        while j < len(lines) and not _FENCE.match(lines[j]):
            j += 1
        if j == len(lines):
            raise DocBlockError(f"{page}:{start + 1}: the block opened here is never closed; add a ``` line.")
        body = "\n".join(line[indent:] if line[:indent].strip() == "" else line for line in lines[start + 1:j])
        where = f"{page}:{start + 1}"
        marker = _MARKER.match(lines[start - 1]) if start > 0 else None
        i = j + 1
        try:
            if not lang:
                raise DocBlockError(
                    f"{where}: the block has no language; write ```text for output or diagrams, ```bash for "
                    f"commands, ```python for code, so that commands and code cannot hide from the doc tests.")
            blocks.append(_classify(page, start + 1, lang, body + "\n", marker.group("body") if marker else None))
        except DocBlockError as e:
            if errors is None:
                raise
            errors.append(str(e))
    return blocks


def _classify(page: str, line: int, lang: str, text: str, marker: str | None) -> Block:
    where = f"{page}:{line}"
    if marker is None:
        if lang in RUN_LANGUAGES:
            kinds = ("<!-- example: program -->, <!-- example: part NAME -->, <!-- example: doctest -->"
                     if lang == "python" else "<!-- example: commands -->")
            raise DocBlockError(
                f"{where}: this {lang} block has no marker; put {kinds} or <!-- example: fragment — REASON --> "
                f"on the line above the fence (see tests/doc_examples.py).")
        return Block(page, line, lang, text)
    if lang not in RUN_LANGUAGES:
        raise DocBlockError(f"{where}: a marker is only read before ```python or ```bash blocks, not ```{lang}.")
    if m := _FRAGMENT.match(marker):
        return Block(page, line, lang, text, "fragment", reason=m.group("reason").strip())
    if marker == "fragment":
        raise DocBlockError(f"{where}: a fragment needs its reason: <!-- example: fragment — why it is not run -->.")
    if lang == "python":
        if marker in ("program", "doctest"):
            return Block(page, line, lang, text, marker)
        if m := _PART.match(marker):
            return Block(page, line, lang, text, "part", name=m.group("name"))
    if lang == "bash" and (m := _COMMANDS.match(marker)):
        writes = (m.group("file"), m.group("page")) if m.group("file") else None
        return Block(page, line, lang, text, "commands", writes=writes)
    valid = "program, part NAME, doctest, fragment — REASON" if lang == "python" else \
        "commands, commands with FILE from PAGE, fragment — REASON"
    raise DocBlockError(f"{where}: marker 'example: {marker}' is not one for a {lang} block; valid: {valid}.")


def blocks(pages: tuple[str, ...] = PAGES, errors: list[str] | None = None) -> list[Block]:
    """The blocks of every page (see :func:`parse` for ``errors``)."""
    out: list[Block] = []
    for page in pages:
        out += parse(page, (REPO / page).read_text(encoding="utf-8"), errors)
    return out


def programs(all_blocks: list[Block]) -> list[Program]:
    """The programs to run: each ``program`` block, and the ``part`` blocks of each (page, name)."""
    out: list[Program] = []
    parts: dict[tuple[str, str], list[Block]] = {}
    for b in all_blocks:
        if b.kind == "program":
            out.append(Program(b.page, "", (b,)))
        elif b.kind == "part":
            key = (b.page, b.name)
            if key not in parts:
                parts[key] = []
                out.append(Program(b.page, b.name, ()))
            parts[key].append(b)
    return [dataclasses.replace(p, blocks=tuple(parts[(p.page, p.name)])) if p.name else p for p in out]


def page_program(all_blocks: list[Block], page: str) -> Program:
    """The one ``program`` block of ``page`` (for ``commands with FILE from PAGE``)."""
    found = [p for p in programs(all_blocks) if p.page == page and not p.name]
    if len(found) != 1:
        raise DocBlockError(f"{page} has {len(found)} program blocks; 'commands with FILE from {page}' needs exactly one.")
    return found[0]


_INLINE_COMMAND = re.compile(r"`((?:yr|python3?|\.venv/bin/[\w.]+|ray|pip) [^`]*)`")


def inline_commands(pages: tuple[str, ...] = PAGES) -> dict[str, list[str]]:
    """Commands written inline in the prose (`` `yr status` ``), outside fenced blocks: command -> where."""
    out: dict[str, list[str]] = {}
    for page in pages:
        inside = False
        for n, line in enumerate((REPO / page).read_text(encoding="utf-8").splitlines(), start=1):
            if _FENCE.match(line):
                inside = not inside
                continue
            if not inside:
                for m in _INLINE_COMMAND.finditer(line):
                    out.setdefault(m.group(1).strip(), []).append(f"{page}:{n}")
    return out


def stated_output(source: str) -> list[str]:
    """Lines a program states it prints: top-level ``print(...)  # <literal>``, in order."""
    comments = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string[1:].strip()
    out = []
    for node in ast.parse(source).body:
        call = node.value if isinstance(node, ast.Expr) else None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print"):
            continue
        comment = comments.get(node.end_lineno)
        if not comment:
            continue
        try:
            value = ast.literal_eval(comment)
        except (ValueError, SyntaxError):
            continue
        out.append(str(value))
    return out


def check_stated_output(stdout: str, expected: list[str]) -> str | None:
    """``None`` when ``expected`` appear as whole lines of ``stdout`` in order, else what is missing."""
    lines = [line.rstrip() for line in stdout.splitlines()]
    pos = 0
    for want in expected:
        try:
            pos = lines.index(want, pos) + 1
        except ValueError:
            return f"expected a line {want!r} (after line {pos} of the output); it did not come"
    return None
