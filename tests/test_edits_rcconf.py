import difflib
import shutil
import subprocess

import pytest

from tasks.edits.rcconf import MARKER, set_rc_vars, shell_quote
from tasks.run.errors import EditError

needs_sh = pytest.mark.skipif(shutil.which("sh") is None, reason="needs /bin/sh")

SITE = {
    "rc_configured": "YES",
    "hostname": "web1.example.org",
    "critical_filesystems_local": "/local /etc /tmp /var",
    "motd_note": 'costs $5 "or" `more` \\ maybe',
}


def changes(before: str, after: str) -> list[tuple[str, list[str], list[str]]]:
    a, b = before.splitlines(), after.splitlines()
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return [
        (tag, a[i1:i2], b[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"
    ]


def sh_value(script: str, name: str, tmp_path) -> str:
    path = tmp_path / "rc.conf"
    path.write_text(script)
    result = subprocess.run(
        ["sh", "-c", f'. "$1" && printf "%s" "${name}"', "sh", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


# --- shell_quote ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("YES", "YES"),
        ("/local /etc /tmp /var", '"/local /etc /tmp /var"'),
        ("-a inet6,ipv6=auto+x@y:1%2", '"-a inet6,ipv6=auto+x@y:1%2"'),
        ("inet6,ipv6=auto+x@y:1%2", "inet6,ipv6=auto+x@y:1%2"),
        ("", '""'),
        ("it's", '"it\'s"'),
        ('a"b$c`d\\e', '"a\\"b\\$c\\`d\\\\e"'),
        ("*", '"*"'),
        ("a;b", '"a;b"'),
    ],
)
def test_shell_quote(value, quoted):
    assert shell_quote(value) == quoted


@needs_sh
@pytest.mark.parametrize(
    "value", ["", "plain", "two words", "$HOME", "`id`", 'say "hi"', "back\\slash", "it's", "*"]
)
def test_shell_quote_round_trips_through_sh(value, tmp_path):
    assert sh_value(f"v={shell_quote(value)}\n", "v", tmp_path) == value


@pytest.mark.parametrize("value", ["two\nlines", "cr\r"])
def test_shell_quote_rejects_newlines(value):
    with pytest.raises(ValueError, match="single lines"):
        shell_quote(value)


# --- set_rc_vars on the fixture -------------------------------------------------------------


def test_fixture_gets_values_and_appended_block(netbsd_file):
    text = netbsd_file("rc.conf")
    result = set_rc_vars(text, SITE)
    assert changes(text, result) == [
        ("replace", ["rc_configured=NO"], ["rc_configured=YES"]),
        (
            "insert",
            [],
            [
                "# Managed by domus: set in the site configuration.",
                "hostname=web1.example.org",
                'critical_filesystems_local="/local /etc /tmp /var"',
                'motd_note="costs \\$5 \\"or\\" \\`more\\` \\\\ maybe"',
            ],
        ),
    ]
    assert result.startswith(text.replace("rc_configured=NO\n", "rc_configured=YES\n"))
    assert result.endswith("\n")


def test_fixture_edit_is_idempotent(netbsd_file):
    once = set_rc_vars(netbsd_file("rc.conf"), SITE)
    assert set_rc_vars(once, SITE) == once


def test_later_call_changes_values_and_reuses_marker(netbsd_file):
    once = set_rc_vars(netbsd_file("rc.conf"), SITE)
    twice = set_rc_vars(once, {"hostname": "web2", "sshd": "YES"})
    assert changes(once, twice) == [
        ("replace", ["hostname=web1.example.org"], ["hostname=web2"]),
        ("insert", [], ["sshd=YES"]),
    ]
    assert twice.count(MARKER) == 1
    assert twice.endswith("sshd=YES\n")


@needs_sh
def test_sh_reads_the_values_back(netbsd_file, tmp_path):
    result = set_rc_vars(netbsd_file("rc.conf"), SITE)
    for name, value in SITE.items():
        assert sh_value(result, name, tmp_path) == value


def test_nothing_to_do_leaves_text_alone(netbsd_file):
    text = netbsd_file("rc.conf")
    assert set_rc_vars(text, {}) == text
    assert set_rc_vars(text, {"rc_configured": "NO"}) == text


# --- set_rc_vars on hand-made text ----------------------------------------------------------


def test_every_assignment_line_changes_and_comments_stay():
    text = (
        "sshd=NO\n"
        "#sshd=YES\n"
        "\tsshd='x y' # keep me\n"
        'sshd="a # b"; ntpd=YES\n'
        "sshd_flags=-4\n"
        "  # sshd=NO\n"
    )
    assert set_rc_vars(text, {"sshd": "YES"}) == (
        "sshd=YES\n"
        "#sshd=YES\n"
        "\tsshd=YES # keep me\n"
        "sshd=YES; ntpd=YES\n"
        "sshd_flags=-4\n"
        "  # sshd=NO\n"
    )


def test_empty_value_and_escaped_value_are_replaced():
    text = "a=\nb=x\\ y # c\n"
    assert set_rc_vars(text, {"a": "1", "b": "two words"}) == 'a=1\nb="two words" # c\n'


@pytest.mark.parametrize(
    "value",
    [
        "$(cat /etc/myname)",
        "$(echo $(uname -n) (x))",
        "${other:-a b}",
        "`hostname -s`",
        "'a b'\"c d\"e\\ f",
    ],
)
def test_whole_value_is_replaced_whatever_its_quoting(value):
    text = f"hostname={value} # was computed\nb=1\n"
    assert set_rc_vars(text, {"hostname": "web1"}) == "hostname=web1 # was computed\nb=1\n"


def test_appended_in_mapping_order():
    result = set_rc_vars("x=1\n", {"zeta": "1", "alpha": "2", "x": "3"})
    assert result == f"x=3\n{MARKER}\nzeta=1\nalpha=2\n"


def test_missing_final_newline_is_preserved():
    assert set_rc_vars("x=1", {"x": "2"}) == "x=2"
    result = set_rc_vars("x=1", {"y": "2"})
    assert result == f"x=1\n{MARKER}\ny=2"
    assert set_rc_vars(result, {"y": "2"}) == result


def test_empty_file_gets_block():
    assert set_rc_vars("", {"y": "2"}) == f"{MARKER}\ny=2\n"


@pytest.mark.parametrize(
    "line", ['sshd="open\n', "sshd='open\n", "sshd=a\\\n", "sshd=$(echo (x)\n", "sshd=`id\n"]
)
def test_value_going_past_its_line_is_an_error(line):
    with pytest.raises(EditError) as caught:
        set_rc_vars(line + "b=1\n", {"sshd": "YES"})
    assert caught.value.message == (
        f"the value of sshd in rc.conf goes on past its line: {line.strip()!r}"
    )
    assert "one line" in caught.value.hint


@pytest.mark.parametrize("name", ["", "1x", "a-b", "a b", "x;y", "x\n"])
def test_bad_variable_name(name):
    with pytest.raises(ValueError, match="not sh variable names"):
        set_rc_vars("", {name: "1"})
