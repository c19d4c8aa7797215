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


# Commands written inline in the prose, by prefix: where a test runs them, or why none does. A
# prefix is also accounted for when a `commands` block of the docs runs it. (path, text the file
# must contain) names the test; a str is the reason.
INLINE_COMMANDS: dict[str, tuple[str, str] | str] = {
    "yr demo": ("tests/e2e/apps/test_demo.py", '"demo", "--basic"'),
    "python -m apps.demo": ("tests/e2e/apps/test_demo.py", '"demo"'),
    "yr start": ("tests/e2e/cli/test_local_cluster_cli.py", 'yr("start", "--address"'),
    "yr validate": ("tests/unit/cli/test_cluster_configs.py", 'run_yr("validate"'),
    "yr trace": ("tests/unit/cli/test_trace_view.py", '["trace", trace_id[:12], "--dir"'),
    "yr token": ("tests/unit/security/test_tokens.py", '["token", "--tenant", "shop"]'),
    "yr certs": ("tests/unit/security/test_tokens.py", '["certs", "--ca-dir"'),
    "python -m pytest": (".ci/run", "python -m pytest"),
    "pip install -e .": (".ci/run", "pip install -e"),
    "python bench/": ("tests/e2e/bench/test_bench_scripts.py", 'BENCH / f"{name}.py"'),
    "python -m datashare.flight_server": ("tests/e2e/docs/test_docs_examples.py", '"datashare.flight_server"'),
    "python -m apps.etl": "the ETL on two million rows takes minutes on a small machine; "
                          "tests/e2e/apps/test_apps.py runs its run_etl on a smaller input",
    "yr stop": "named as missing: 'there is no yr stop yet'",
    "python -m tests.compat.openyuanrong_st": ("tests/unit/compat/test_openyuanrong_runner.py",
                                               '"tests.compat.openyuanrong_st"'),
    "python -m placement.sim --full": "the full sweep takes minutes on 2 cores; tests/unit/placement/test_outcomes.py "
                                      "runs the same entry point and sweep at a small size",
    "python -m yuanrong.testbed": "starts three raylets for about 15 s; tests/e2e/placement/test_testbed.py "
                                  "runs the same Testbed and measure_rtts at CI size",
    "yr testbed --help": ("tests/unit/cli/test_testbed_command.py", '["testbed", "--help"]'),
    "yr testbed": ("tests/e2e/cli/test_testbed_cli.py", 'yr("testbed", "--cloud-ms"'),
    "ray ": "Ray's own command line, named where yuanrong defers to it (cloud clusters, stopping a node)",
}


def test_every_inline_command_runs_in_a_test_or_says_why():
    in_blocks = "\n".join(b.text for b in BLOCKS if b.kind == "commands")
    unaccounted = []
    for command, where in sorted(doc_examples.inline_commands().items()):
        prefixes = [p for p in INLINE_COMMANDS if command.startswith(p)]
        run_in_docs = any(len(ran.split()) >= 2 and (command.startswith(ran) or ran.startswith(command))
                          for ran in (line.split("#")[0].strip() for line in in_blocks.splitlines()))
        if not prefixes and not run_in_docs:
            unaccounted.append(f"`{command}` ({', '.join(where)})")
    assert not unaccounted, (
        "commands in the prose that no test runs; run them in a `commands` block or a test, or add them to "
        "INLINE_COMMANDS with the reason: " + "; ".join(unaccounted))


@pytest.mark.parametrize("prefix", sorted(INLINE_COMMANDS))
def test_the_tests_named_for_inline_commands_run_them(prefix):
    where = INLINE_COMMANDS[prefix]
    if isinstance(where, str):
        assert len(where) >= 20, f"{prefix}: say why no test runs it"
        return
    path, text = where
    assert text in (REPO / path).read_text(encoding="utf-8"), f"{path} no longer runs `{prefix}` ({text!r})"


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
