import difflib
import shutil
import subprocess

import pytest

from tasks.edits.rc import HOOK, add_pre_hook
from tasks.run.errors import EditError
from tests.conftest import REPO

OLD_STYLE_RC = """#!/bin/sh
#
# old-style rc: rc.subr sourced on a line of its own
export HOME=/
. /etc/rc.subr
. /etc/rc.conf
_rc_conf_loaded=true
"""


def changes(before: str, after: str) -> list[tuple[str, list[str], list[str]]]:
    a, b = before.splitlines(), after.splitlines()
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return [
        (tag, a[i1:i2], b[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"
    ]


def test_the_hook_rc_sources_is_a_file_the_root_image_ships():
    assert (REPO / "templates" / "root" / HOOK.lstrip("/")).is_file()


def test_fixture_gets_hook_inside_else_branch_with_tab(netbsd_file):
    rc = netbsd_file("rc")
    patched = add_pre_hook(rc)
    assert changes(rc, patched) == [("insert", [], ["\t. /etc/rc.pre-hooks"])]
    lines = patched.splitlines()
    at = lines.index("\t. /etc/rc.pre-hooks")
    assert lines[at - 3 : at + 3] == [
        "if [ -e ./rc.subr ] ; then",
        "\t. ./rc.subr # for testing",
        "else",
        "\t. /etc/rc.pre-hooks",
        "\t. /etc/rc.subr",
        "fi",
    ]


def test_fixture_add_is_idempotent(netbsd_file):
    rc = netbsd_file("rc")
    once = add_pre_hook(rc)
    assert once != rc
    assert add_pre_hook(once) == once


def test_old_style_rc_gets_hook_at_column_zero():
    patched = add_pre_hook(OLD_STYLE_RC)
    assert changes(OLD_STYLE_RC, patched) == [("insert", [], [". /etc/rc.pre-hooks"])]
    lines = patched.splitlines()
    assert lines[lines.index(". /etc/rc.pre-hooks") + 1] == ". /etc/rc.subr"
    assert add_pre_hook(patched) == patched


def test_only_first_rc_subr_line_is_the_anchor():
    rc = ". /etc/rc.subr\n: between\n  . /etc/rc.subr\n"
    assert add_pre_hook(rc) == ". /etc/rc.pre-hooks\n. /etc/rc.subr\n: between\n  . /etc/rc.subr\n"


def test_crlf_line_endings_are_followed():
    rc = "#!/bin/sh\r\n. /etc/rc.subr\r\n"
    patched = add_pre_hook(rc)
    assert patched == "#!/bin/sh\r\n. /etc/rc.pre-hooks\r\n. /etc/rc.subr\r\n"


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs /bin/sh")
def test_patched_fixture_still_parses(netbsd_file, tmp_path):
    script = tmp_path / "rc"
    script.write_text(add_pre_hook(netbsd_file("rc")))
    result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "rc",
    [
        "#!/bin/sh\n. /etc/rc.conf\n",
        "#!/bin/sh\n. ./rc.subr\n",
        "#!/bin/sh\n. /etc/rc.subr.local\n",
        "#!/bin/sh\n# . /etc/rc.subr\n",
    ],
)
def test_missing_anchor_is_an_error(rc):
    with pytest.raises(EditError) as caught:
        add_pre_hook(rc)
    assert "/etc/rc.subr" in caught.value.message
    assert "rc.pre-hooks" in caught.value.hint
