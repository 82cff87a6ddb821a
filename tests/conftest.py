import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from tasks.images.tree import Tree

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NETBSD = SHARED / "netbsd-fixtures" / "etc"


def assert_staged(tree: Tree) -> None:
    """Every entry of the tree's manifest has staged content of its type."""
    kinds = {"dir": stat.S_ISDIR, "file": stat.S_ISREG, "link": stat.S_ISLNK}
    wrong = {
        path: entry.type
        for path, entry in tree.entries.items()
        # device nodes and FIFOs are manifest entries only: nothing is staged for them
        if entry.type in kinds and not kinds[entry.type](tree.host_path(path).lstat().st_mode)
    }
    assert wrong == {}, f"staged content of another type than the manifest says: {wrong}"


@pytest.fixture
def netbsd_file():
    """Text of a real NetBSD file from ../shared/netbsd-fixtures/etc (read, never copied)."""

    def read(relpath: str) -> str:
        return (NETBSD / relpath).read_text()

    return read


@pytest.fixture(scope="session")
def xl(tmp_path_factory):
    """xl's own parser (tests/xl.py); skips, saying how to install it, where xl is missing."""
    from tests import xl as xl_module

    reason = xl_module.missing()
    if reason:
        pytest.skip(reason)
    stub = xl_module.build_stub(tmp_path_factory.mktemp("xl-stub"))
    return xl_module.Xl(xl_module.xl_binary(), stub)


@pytest.fixture(scope="session")
def nobody():
    """How the unprivileged user runs this checkout's code (tests/unprivileged.py)."""
    from tests.unprivileged import unprivileged

    with unprivileged() as how:
        if isinstance(how, str):
            pytest.skip(how)
        yield how


@pytest.fixture
def public_tmp():
    """A directory another user can reach (pytest's own are root's alone)."""
    from tests.mounting import release_everything_under

    directory = Path(tempfile.mkdtemp(prefix="domus-test-"))
    directory.chmod(0o755)
    yield directory
    release_everything_under(directory)
    shutil.rmtree(directory)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (CI=true, as `.ci/run` is run) a skip fails: `./domus test` installs every
    tool a test needs, so a test that skips there names an install step that is missing."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where nothing may skip: {reason}"
