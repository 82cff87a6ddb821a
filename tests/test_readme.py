"""The README's configuration reference is the one the settings table generates."""

from tasks.site import reference_markdown
from tests.conftest import REPO


def test_readme_reference_is_current():
    readme = (REPO / "README.md").read_text()
    start = readme.index("<!-- reference: generated")
    block = readme[readme.index("\n", start) + 1 : readme.index("<!-- end of reference -->")]
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
