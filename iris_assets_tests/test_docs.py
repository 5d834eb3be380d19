"""The documentation's relative links resolve: every file exists and every #anchor is a heading.

For README.md, every page under docs/, RELIABILITY.md, BENCHMARKS.md and
benchmarks/analysis.md: each relative Markdown link `[text](target)`, image
`![alt](target)` and reference definition `[name]: target` must name a file (or folder)
of the repository, relative to the page; an `#anchor` (or a bare `#anchor`, on the page
itself) must be the GitHub slug of a heading of the target Markdown file. Links with a
scheme (http, https, mailto…) and links inside fenced code blocks or code spans are not
checked.
"""

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from iris_harness.environment import REPO_ROOT

TOP_LEVEL_PAGES = ("README.md", "RELIABILITY.md", "BENCHMARKS.md", "benchmarks/analysis.md")


def documentation_pages(root: Path = REPO_ROOT) -> list[Path]:
    pages = [root / name for name in TOP_LEVEL_PAGES]
    return pages + sorted((root / "docs").rglob("*.md"))


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
# `[` text `](` with one level of nested brackets (an image inside a link); the target is read after.
_LINK_OPENER = re.compile(r"\[(?:[^\[\]\n]|\[[^\[\]\n]*\])*\]\(")
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(\S+)")
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")
_LINE_ANCHOR = re.compile(r"^L\d+(-L\d+)?$")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        opening = _FENCE.match(line)
        if fence is None:
            if opening and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
                fence = opening.group(1)
                continue
            lines.append((number, line))
        elif opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
            if not opening.group(2).strip():
                fence = None
    return lines


def _without_code_spans(line: str) -> str:
    return _CODE_SPAN.sub(lambda span: " " * len(span.group(0)), line)


def _target_after(line: str, start: int) -> str:
    """The link destination that starts at ``start`` (just after `](`), without its title."""
    depth, end = 0, start
    while end < len(line):
        char = line[end]
        if char == "\\":
            end += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                break
            depth -= 1
        end += 1
    inside = line[start:end].strip()
    if inside.startswith("<"):
        return inside[1 : inside.find(">")] if ">" in inside else inside[1:]
    return inside.split()[0] if inside else ""


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every link, image and reference definition outside code."""
    found = []
    for number, line in prose_lines(text):
        line = _without_code_spans(line)
        for opener in _LINK_OPENER.finditer(line):
            found.append((number, _target_after(line, opener.end())))
        definition = _REFERENCE_DEFINITION.match(line)
        if definition:
            found.append((number, definition.group(1).strip("<>")))
    return found


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading (before duplicates are numbered)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link or image: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # punctuation goes; letters, digits, _, - and spaces stay
    return text.replace(" ", "-")


def heading_anchors(text: str) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    previous = ""
    for _, line in prose_lines(text):
        heading = None
        atx = _ATX_HEADING.match(line)
        if atx:
            heading = atx.group(2) or ""
        elif previous.strip() and _SETEXT_UNDERLINE.match(line) and not _ATX_HEADING.match(previous):
            if not previous.lstrip().startswith(("|", "-", "*", "+", ">")):
                heading = previous
        previous = "" if heading is not None else line
        if heading is None:
            continue
        slug = github_slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(page: Path, root: Path = REPO_ROOT) -> list[str]:
    """What is wrong with each relative link of ``page``, one line each (empty: all resolve)."""
    problems = []
    shown = page.relative_to(root)
    for number, target in links(page.read_text()):
        where = f"{shown}:{number}: ({target})"
        if not target:
            problems.append(f"{where}: empty link target")
            continue
        if _SCHEME.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part.split("?", 1)[0])
        linked = (page.parent / path_part).resolve() if path_part else page.resolve()
        if not linked.is_relative_to(root.resolve()):
            problems.append(f"{where}: {path_part} is outside the repository")
            continue
        if not linked.exists():
            problems.append(f"{where}: no file {linked.relative_to(root.resolve())}")
            continue
        if not anchor:
            continue
        anchor = unquote(anchor)
        if linked.is_dir():
            problems.append(f"{where}: #{anchor} on a folder")
        elif linked.suffix.lower() not in (".md", ".markdown"):
            if not _LINE_ANCHOR.match(anchor):
                problems.append(f"{where}: #{anchor} on {linked.name}, which has no headings")
        elif anchor not in heading_anchors(linked.read_text()):
            problems.append(f"{where}: {linked.relative_to(root.resolve())} has no heading whose anchor is #{anchor}")
    return problems


@pytest.mark.parametrize("page", documentation_pages(), ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves(page):
    assert page.exists(), f"{page.relative_to(REPO_ROOT)} is missing"
    problems = broken_links(page)
    assert problems == [], "broken links:\n" + "\n".join(problems)


def test_the_docs_folder_has_an_index_of_its_pages():
    index = REPO_ROOT / "docs" / "README.md"
    listed = {(index.parent / target).resolve() for _, target in links(index.read_text())}
    missing = [
        str(page.relative_to(REPO_ROOT))
        for page in sorted((REPO_ROOT / "docs").glob("*.md"))
        if page != index and page.resolve() not in listed
    ]
    assert missing == [], f"docs/README.md does not list: {', '.join(missing)}"


def test_github_slugs():
    assert github_slug("A fair champion: same data, same yardstick") == "a-fair-champion-same-data-same-yardstick"
    assert github_slug("Deployment (docker compose)") == "deployment-docker-compose"
    assert github_slug("`iris-predict`") == "iris-predict"
    assert github_slug("Module layout rather than `defs/`") == "module-layout-rather-than-defs"
    assert github_slug("Automation: schedule, sensors, checks") == "automation-schedule-sensors-checks"
    assert github_slug("The [registry](registry.md) & `io_manager.py`") == "the-registry--io_managerpy"


def test_a_broken_link_or_anchor_is_reported_and_code_is_not_checked(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "other.md").write_text("# Other\n\n## Twice\n\n## Twice\n\nText\n----\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n"
        "[fine](../other.md#twice-1) [setext](../other.md#text) [self](#page) [web](https://example.com/x#y)\n"
        "![picture](images/missing.png) [gone](../nowhere.md) [bad anchor](../other.md#thrice)\n"
        "[no heading](#nothing) `[in a code span](../nowhere.md)` [outside](../../../etc/passwd)\n"
        "  ```bash\n  [in a fence](../nowhere.md)\n  ```\n"
        "[after the fence](../other.md#twice-2)\n"
    )
    problems = broken_links(page, root=tmp_path)
    assert problems == [
        "docs/page.md:4: (images/missing.png): no file docs/images/missing.png",
        "docs/page.md:4: (../nowhere.md): no file nowhere.md",
        "docs/page.md:4: (../other.md#thrice): other.md has no heading whose anchor is #thrice",
        "docs/page.md:5: (#nothing): docs/page.md has no heading whose anchor is #nothing",
        "docs/page.md:5: (../../../etc/passwd): ../../../etc/passwd is outside the repository",
        "docs/page.md:9: (../other.md#twice-2): other.md has no heading whose anchor is #twice-2",
    ], problems


# -- shown outputs -------------------------------------------------------------------------------

_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


def shown_outputs(text: str) -> dict[str, str]:
    """command → the output a page shows for it: a one-command ```bash block followed directly
    (nothing but blank lines between) by a ``` or ```text block."""
    blocks = list(_BLOCK.finditer(text))
    shown = {}
    for block, after in zip(blocks, blocks[1:], strict=False):
        commands = [line for line in block.group(2).splitlines() if line.strip()]
        if block.group(1) == "bash" and len(commands) == 1 and after.group(1) in ("", "text"):
            if not text[block.end() : after.start()].strip():
                shown[commands[0].split("  #")[0].strip()] = after.group(2)
    return shown


def test_docs_pages_show_the_readme_s_outputs_for_the_same_commands():
    """The README tour's shown outputs are compared with what the tour prints (test_readme.py);
    a docs page that shows an output for one of the same commands must show the same output."""
    readme = shown_outputs((REPO_ROOT / "README.md").read_text())
    compared = 0
    for page in documentation_pages()[1:]:
        for command, output in shown_outputs(page.read_text()).items():
            if command in readme:
                compared += 1
                assert output == readme[command], f"{page.relative_to(REPO_ROOT)} shows another output for {command}"
    assert compared >= 2  # iris-predict and the served model's curl, in registry-and-serving.md
