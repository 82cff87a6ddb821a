"""The README's configuration reference is the one the settings table generates."""

from tasks.config import reference_markdown
from tests.conftest import REPO


def test_readme_reference_is_current():
    readme = (REPO / "README.md").read_text()
    start = readme.index("<!-- reference: generated")
    block = readme[readme.index("\n", start) + 1 : readme.index("<!-- end of reference -->")]
    assert block.strip() == reference_markdown().strip(), (
        "regenerate it: .venv/bin/python -m tasks.config --reference"
    )


def test_readme_commands_are_the_ones_ci_runs():
    readme = (REPO / "README.md").read_text()
    assert "./domus build" in readme and "./domus test" in readme
    assert "./domus test" in (REPO / ".ci" / "run").read_text()
