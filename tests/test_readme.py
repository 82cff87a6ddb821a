"""The README and docs/: the settings reference is the one the settings tables generate, the
quick start runs what CI runs, and every link and page named leads somewhere."""

import re
from pathlib import Path

from tasks.site import reference_markdown
from tests.conftest import REPO

DOCS = REPO / "docs"
PAGES = [
    REPO / "README.md",
    *sorted(DOCS.glob("*.md")),
    REPO / "tests" / "README.md",
    REPO / "bench" / "README.md",
]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_settings_reference_is_current():
    page = (DOCS / "site.md").read_text()
    start = page.index("<!-- reference: generated")
    block = page[page.index("\n", start) + 1 : page.index("<!-- end of reference -->")]
    assert block.strip() == reference_markdown().strip(), (
        "regenerate it: .venv/bin/python -m tasks.site --reference"
    )


def quick_start(readme: str) -> list[str]:
    """The commands of the README's first code block, without their comments."""
    block = readme.split("```", 2)[1]
    return [line.partition("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_commands_are_the_ones_ci_runs():
    commands = quick_start((REPO / "README.md").read_text())
    assert "./domus build" in commands
    (test_command,) = [command for command in commands if command.startswith("./domus test")]
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert [line.strip() for line in ci if line.strip().startswith("./domus")] == [test_command]


def prose(text: str) -> tuple[list[str], list[str]]:
    """A page's lines outside code blocks, and those inside them."""
    outside: list[str] = []
    inside: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced:
            inside.append(line)
        else:
            outside.append(line)
    return outside, inside


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lowercase, punctuation dropped, spaces to
    hyphens, a repeated one numbered."""
    seen: dict[str, int] = {}
    for line in prose(page.read_text())[0]:
        heading = re.match(r"#{1,6} (.*)", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading[1].strip().lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            if count:
                seen[f"{slug}-{count}"] = 1
    return set(seen)


def links(page: Path) -> list[str]:
    """The link targets of a page's prose, code spans left out."""
    text = "\n".join(prose(page.read_text())[0])
    return LINK.findall(re.sub(r"`[^`\n]*`", "", text))


def test_every_relative_link_leads_to_a_file_and_heading_that_exist():
    broken = []
    for page in PAGES:
        for target in links(page):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path) if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}: no such file")
            elif anchor and anchor not in anchors(file):
                broken.append(f"{page.relative_to(REPO)}: {target}: no such heading")
    assert broken == []


def test_no_link_hides_in_a_code_block():
    # a code block shows a link as its markdown, so one there is a link nobody can follow
    hidden = [
        f"{page.relative_to(REPO)}: {line.strip()}"
        for page in PAGES
        for line in prose(page.read_text())[1]
        if LINK.search(line)
    ]
    assert hidden == []


def test_the_pages_the_code_names_exist():
    named = {
        name
        for source in (REPO / "tasks").rglob("*.py")
        for name in re.findall(r"\bdocs/[\w-]+\.md", source.read_text())
    }
    assert "docs/templates.md" in named  # the hint of a template that fails names it
    assert sorted(name for name in named if not (REPO / name).is_file()) == []
    assert "the README (" not in "".join(p.read_text() for p in (REPO / "tasks").rglob("*.py"))


def test_the_readme_indexes_every_page_of_docs():
    readme = (REPO / "README.md").read_text()
    index = readme[readme.index("## Where to read more") :]
    pages = sorted(DOCS.glob("*.md"))
    assert [page.name for page in pages if f"(docs/{page.name})" not in index] == []
