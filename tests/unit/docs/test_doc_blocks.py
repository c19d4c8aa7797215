"""Every block of README.md and docs/*.md is run by the suite or set aside on purpose (no cluster).

The markers are described in ``tests/doc_examples.py``. Here: every page parses (an unmarked
python/bash block, or one without a language, fails), fragments give a reason, programs compile,
command blocks are valid bash, and the ``doctest`` blocks run (they are pure).
"""

from __future__ import annotations

import doctest
import re
import subprocess

import pytest

import doc_examples
from doc_examples import REPO, DocBlockError, parse

ERRORS: list[str] = []
BLOCKS = doc_examples.blocks(errors=ERRORS)
PROGRAMS = doc_examples.programs(BLOCKS)


def test_every_block_has_a_language_and_every_python_or_bash_block_a_marker():
    assert not ERRORS, "\n".join(ERRORS)


def test_every_python_and_bash_block_is_run_or_set_aside_with_a_reason():
    runnable = [b for b in BLOCKS if b.language in doc_examples.RUN_LANGUAGES]
    assert runnable, "no python or bash blocks found in the docs"
    for b in runnable:
        assert b.kind in doc_examples.KINDS, b.where
        if b.kind == "fragment":
            assert len(b.reason) >= 20, f"{b.where}: say why this block is not run, in a sentence"
            for path in re.findall(r"(?:tests|bench|apps|yuanrong|\.ci)/[\w./-]+\w", b.reason):
                assert (REPO / path).exists(), f"{b.where}: the reason names {path}, which does not exist"


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.where)
def test_programs_compile(program):
    compile(program.source, program.where, "exec")


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "commands"], ids=lambda b: b.where)
def test_command_blocks_are_valid_bash_and_their_programs_exist(block):
    proc = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{block.where}: {proc.stderr}"
    if block.writes:
        doc_examples.page_program(BLOCKS, block.writes[1])


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind == "doctest"], ids=lambda b: b.where)
def test_doctest_blocks(block, monkeypatch):
    monkeypatch.chdir(REPO)  # paths in the docs are relative to the repository, where a reader runs them
    test = doctest.DocTestParser().get_doctest(block.text, {}, block.where, block.page, block.line)
    assert test.examples, f"{block.where}: a doctest block without >>> lines"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    result = runner.run(test, out=out.append)
    assert result.failed == 0, "".join(out)


# --- the checker itself can fail ------------------------------------------------------------------

def test_an_unmarked_python_block_is_refused_with_the_fix():
    with pytest.raises(DocBlockError, match=r"page.md:3: this python block has no marker; put <!-- example: program -->"):
        parse("page.md", "text\n\n```python\nprint(1)\n```\n")


def test_a_block_without_language_is_refused():
    with pytest.raises(DocBlockError, match=r"page.md:1: the block has no language"):
        parse("page.md", "```\nyr local up\n```\n")


def test_a_fragment_without_reason_is_refused():
    with pytest.raises(DocBlockError, match="a fragment needs its reason"):
        parse("page.md", "<!-- example: fragment -->\n```python\nx\n```\n")


def test_parts_are_joined_in_page_order_and_stated_output_is_read():
    blocks = parse("page.md", "<!-- example: part story -->\n```python\nx = 1\n```\n\nprose\n\n"
                              "<!-- example: program -->\n```python\nprint(2)  # 2\n```\n"
                              "<!-- example: part story -->\n```python\nprint(x + 2)      # 3\nprint('y')  # y, not a literal\n```\n")
    story, alone = doc_examples.programs(blocks)
    assert story.where == "page.md:2" and [b.line for b in story.blocks] == [2, 13]
    assert story.expected_output() == ["3"] and alone.expected_output() == ["2"]
    # Line N of the program is line N of the page, so a traceback points into the Markdown.
    assert story.source.split("\n")[2] == "x = 1" and story.source.split("\n")[13] == "print(x + 2)      # 3"
    assert doc_examples.check_stated_output("1\n3\n", ["3"]) is None
    assert "expected a line '3'" in doc_examples.check_stated_output("4\n", ["3"])
