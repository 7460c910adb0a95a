"""The README is the front door and docs/ holds the deep dives: their code fences balance, their links resolve,
their commands are written one way, and every python snippet in them runs (a block whose fence reads
```python notest (WHY) is shown, not run, and says why in its info string)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
DOCS = os.path.join(ROOT, "docs")
PAGES = [README] + sorted(os.path.join(DOCS, f) for f in os.listdir(DOCS) if f.endswith(".md"))
# The two set-up commands of the Quickstart, exactly as a fresh machine runs them (.ci/run runs the second).
TRAIN_COMMAND = ("bash scripts/setup.sh && .venv/bin/python scripts/train.py --config experiments/configs/default.py "
                 "--workdir runs/default")
TEST_COMMAND = "bash scripts/setup.sh && .venv/bin/python -m pytest -q -n 2 tests"


def _name(path):
    return os.path.relpath(path, ROOT)


def _read(path):
    with open(path) as f:
        return f.read()


def fenced_blocks(text: str) -> list[tuple[int, str, str]]:
    """(line number, info string, body) of every fenced code block; an unclosed fence raises ValueError."""
    blocks, opened = [], None
    for i, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped.startswith("```"):
            if opened is not None:
                opened[2].append(line[opened[3]:] if line[:opened[3]].strip() == "" else line)
            continue
        if opened is None:
            opened = (i, stripped[3:].strip(), [], len(line) - len(line.lstrip()))
        elif stripped == "```":
            blocks.append((opened[0], opened[1], "\n".join(opened[2])))
            opened = None
        else:
            raise ValueError(f"line {i}: a fence with an info string ({stripped!r}) inside the block opened at "
                             f"line {opened[0]}")
    if opened is not None:
        raise ValueError(f"the code fence opened at line {opened[0]} is never closed")
    return blocks


def prose(text: str) -> str:
    """The text outside code blocks (their lines blanked, so line numbers stay)."""
    out, inside = [], False
    for line in text.split("\n"):
        if line.strip().startswith("```"):
            inside = not inside
            out.append("")
        else:
            out.append("" if inside else line)
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces to -."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: str) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*)$", prose(_read(path)), re.M)}


def test_fence_parser_finds_an_unclosed_fence_and_a_nested_opening():
    assert [b[:2] for b in fenced_blocks("a\n```python\nx = 1\n```\n```\nplain\n```\n")] == [(2, "python"), (5, "")]
    with pytest.raises(ValueError, match="line 3 is never closed"):
        fenced_blocks("a\n\n```bash\nls\n")
    with pytest.raises(ValueError, match="inside the block opened at line 1"):
        fenced_blocks("```\nx\n```python\ny\n```\n")


def test_slug_is_githubs():
    assert slug("Dependencies, and why each") == "dependencies-and-why-each"
    assert slug("Ops and the native CPU path") == "ops-and-the-native-cpu-path"
    assert slug("The input pipeline (`jaxcnn.data`, on grain)") == "the-input-pipeline-jaxcnndata-on-grain"


@pytest.mark.parametrize("path", PAGES, ids=_name)
def test_code_fences_balance(path):
    fenced_blocks(_read(path))  # raises naming the line of a fence that is never closed


@pytest.mark.parametrize("path", PAGES, ids=_name)
def test_links_resolve(path):
    broken = []
    for m in re.finditer(r"\[[^\]]*\]\(([^)\s]+)\)", prose(_read(path))):
        target = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        if not os.path.exists(full):
            broken.append(f"{target} (no file {_name(full)})")
        elif anchor and full.endswith(".md") and anchor not in anchors(full):
            broken.append(f"{target} (no heading #{anchor} in {_name(full)})")
    assert not broken, f"{_name(path)}: links that do not resolve: {broken}"


def test_readme_is_a_front_door_with_the_two_commands_and_a_map_of_every_docs_page():
    text = _read(README)
    assert len(text.split("\n")) <= 400
    blocks = [body.strip() for _, info, body in fenced_blocks(text) if info == "bash"]
    assert blocks[:2] == [TRAIN_COMMAND, TEST_COMMAND]
    for page in sorted(os.listdir(DOCS)):
        if page.endswith(".md"):
            assert f"(docs/{page})" in text, f"README.md's map of the docs has no link to docs/{page}"


def test_ci_runs_exactly_the_readmes_test_command():
    ci = _read(os.path.join(ROOT, ".ci", "run"))
    assert TEST_COMMAND in [line.strip() for line in ci.split("\n")]


@pytest.mark.parametrize("path", PAGES, ids=_name)
def test_commands_are_written_one_way(path):
    """`python ...` from the repository root with the virtual environment active; the Quickstart's two set-up
    commands alone name .venv/bin/python, because they are what a fresh machine runs."""
    text = _read(path)
    for command in (TRAIN_COMMAND, TEST_COMMAND):
        text = text.replace(command, "")
    lines = [i for i, line in enumerate(text.split("\n"), 1) if ".venv/bin/python" in line]
    assert not lines, (f"{_name(path)}: write commands as `python ...` (venv active), not .venv/bin/python: "
                       f"lines {lines}")


def _snippets():
    for path in PAGES:
        blocks = [(line, body) for line, info, body in fenced_blocks(_read(path))
                  if info.split()[:1] == ["python"] and "notest" not in info.split()]
        if blocks:
            yield pytest.param(path, blocks, id=_name(path))


@pytest.mark.parametrize("path", PAGES, ids=_name)
def test_a_snippet_that_is_not_run_says_why(path):
    silent = [line for line, info, _ in fenced_blocks(_read(path))
              if info.split()[:1] == ["python"] and info.split()[1:] == ["notest"]]
    assert not silent, (f"{_name(path)}: python blocks marked notest without the reason (write it after notest in "
                        f"the fence, e.g. ```python notest (needs a finished run)): lines {silent}")


@pytest.mark.slow
@pytest.mark.parametrize("path,blocks", list(_snippets()))
def test_python_snippets_run(path, blocks, tmp_path):
    """Each page's runnable snippets, in order, in one fresh interpreter (a later snippet may use an earlier
    one's names), from the repository root."""
    program = "\n".join(f"# {_name(path)}:{line}\n{body}\n" for line, body in blocks)
    script = tmp_path / "snippets.py"
    script.write_text("from jaxcnn import runtime\nruntime.configure()\n" + program)
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, f"{_name(path)}: a snippet failed:\n{r.stderr[-3000:]}"
