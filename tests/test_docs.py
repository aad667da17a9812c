"""The README and docs/ hold together: every relative link and `#anchor` resolves, every docs
page is reachable from the README, and the README stays a map.

Anchors follow GitHub's slugs: the heading's text lowercased, punctuation dropped (letters,
digits, `_`, `-` and spaces stay), spaces turned into `-`, and a repeated slug numbered `-1`,
`-2`. Links inside code (fenced or indented blocks, inline code spans) are not links, and
external ones (`http:`, `mailto:`) are not checked: the suite runs without network.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import REPO


def pages(repo: Path = REPO) -> list[Path]:
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_CODE_SPAN = re.compile(r"(`+).*?\1")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the non-blank lines outside code blocks, fenced or indented. An
    indented line is code after a blank line or after more code; a list item's wrapped line
    (indented by two) is prose."""
    out, fenced, code, previous_blank = [], False, False, True
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced, previous_blank = not fenced, False
            continue
        if fenced:
            continue
        blank = not line.strip()
        if not blank:
            code = line.startswith(("    ", "\t")) and (previous_blank or code)
            if not code:
                out.append((number, line))
        previous_blank = blank
    return out


def slug(heading: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The heading anchors of a page: the first of a slug plain, its repeats `-1`, `-2`, ..."""
    found, seen = set(), {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        if (match := _HEADING.match(line)) is not None:
            base = slug(match.group(2))
            found.add(f"{base}-{seen[base]}" if base in seen else base)
            seen[base] = seen.get(base, 0) + 1
    return found


def broken_links(path: Path) -> list[str]:
    """One line per link of `path` that does not resolve: the line number, the link, why."""
    problems = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for target in _LINK.findall(_CODE_SPAN.sub("", line)):
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue  # an external URL (or an empty one, which GitHub shows as text)
            file_part, _, anchor = target.partition("#")
            where = (path.parent / file_part).resolve() if file_part else path
            if not where.exists():
                problems.append(f"{path.name}:{number}: {target}: no such file")
            elif anchor and where.is_file() and where.suffix == ".md":
                if anchor not in anchors(where):
                    problems.append(f"{path.name}:{number}: {target}: no heading "
                                    f"'{anchor}' in {where.name}")
            elif anchor:
                problems.append(f"{path.name}:{number}: {target}: an anchor into a non-Markdown "
                                "target")
    return problems


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_link_resolves(page):
    assert broken_links(page) == []


def test_every_docs_page_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    linked = {(REPO / t.partition("#")[0]).resolve()
              for _, line in prose_lines(readme) for t in _LINK.findall(_CODE_SPAN.sub("", line))}
    assert [p.name for p in pages()[1:] if p.resolve() not in linked] == []


def test_the_readme_stays_a_map():
    """About 300 lines at most (issue 32): details go to a docs page, with a link."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 320, f"README.md has {lines} lines; move the detail to docs/"


def test_the_checker_finds_broken_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(
        "# Page A\n\n## Grids, caching and continued training\n\n## Grids, caching and continued"
        " training\n\n### 4. Look at `mlflow ui`!\n", encoding="utf-8")
    (tmp_path / "README.md").write_text("\n".join([
        "# Top",
        "[fine](docs/a.md) [fine](docs/a.md#page-a) [fine](#top) [fine](https://example.com/x)",
        "[fine](docs/a.md#grids-caching-and-continued-training-1)",
        "[fine](docs/a.md#4-look-at-mlflow-ui)",
        "[no file](docs/b.md) [no anchor](docs/a.md#grids) [no anchor here](#nowhere)",
        "[numbered past the copies](docs/a.md#grids-caching-and-continued-training-2)",
        "`[in code](missing.md)` and ![an image](docs/missing.png)",
        "",
        "    [in a code block](missing.md)",
        "```",
        "[in a fence](missing.md)",
        "```",
        "- a list item",
        "  [wrapped in the item](docs/gone.md)",
    ]) + "\n", encoding="utf-8")
    found = broken_links(tmp_path / "README.md")
    assert [p.split(": ", 1)[1] for p in found] == [
        "docs/b.md: no such file",
        "docs/a.md#grids: no heading 'grids' in a.md",
        "#nowhere: no heading 'nowhere' in README.md",
        "docs/a.md#grids-caching-and-continued-training-2: no heading "
        "'grids-caching-and-continued-training-2' in a.md",
        "docs/missing.png: no such file",
        "docs/gone.md: no such file",
    ]
    assert [p.name for p in pages(tmp_path)] == ["README.md", "a.md"]
