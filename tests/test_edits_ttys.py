import pytest

from tasks.edits.ttys import console_only
from tasks.errors import EditError

CURRENT = "etc.amd64/ttys"
VARIANT = "../_variants/etc/etc.amd64/ttys.rev1.5-lparkes"


@pytest.fixture
def variant_ttys(netbsd_file):
    return netbsd_file(VARIANT)


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(a) == len(b)
    return [(old, new) for old, new in zip(a, b, strict=True) if old != new]


def test_current_ttys_turns_console_on_and_constty_off(netbsd_file):
    text = netbsd_file(CURRENT)
    result = console_only(text)
    assert changed_lines(text, result) == [
        (
            'console\t"/usr/libexec/getty Pc"\t\tvt100\toff secure\n',
            'console\t"/usr/libexec/getty Pc"\t\tvt100\ton secure\n',
        ),
        (
            'constty\t"/usr/libexec/getty Pc"\t\tvt100\ton secure\n',
            'constty\t"/usr/libexec/getty Pc"\t\tvt100\toff secure\n',
        ),
    ]


def test_older_ttys_is_already_console_only(variant_ttys):
    assert 'console\t"/usr/libexec/getty Pc"\t\tvt100\ton secure\n' in variant_ttys
    assert console_only(variant_ttys) == variant_ttys


@pytest.mark.parametrize("name", [CURRENT, VARIANT])
def test_every_entry_but_console_is_off_and_idempotent(netbsd_file, name):
    result = console_only(netbsd_file(name))
    entries = [line.split() for line in result.splitlines() if line and not line.startswith("#")]
    assert len(entries) == 14
    status = {fields[0]: fields[-2] for fields in entries}
    assert status.pop("console") == "on"
    assert set(status.values()) == {"off"}
    assert console_only(result) == result


def test_only_the_status_word_changes():
    text = (
        "# name getty type status\n"
        "\n"
        '  tty00  "/usr/libexec/getty std.9600 on"   unknown   on  secure  # on purpose\n'
        'console "/usr/libexec/getty Pc" vt100 off secure local # off\n'
        "ttyE0 none on\toff\n"
    )
    assert console_only(text) == (
        "# name getty type status\n"
        "\n"
        '  tty00  "/usr/libexec/getty std.9600 on"   unknown   off  secure  # on purpose\n'
        'console "/usr/libexec/getty Pc" vt100 on secure local # off\n'
        "ttyE0 none on\toff\n"
    )


def test_no_console_entry_is_an_error(netbsd_file):
    text = netbsd_file(CURRENT).replace("console\t", "#console\t")
    with pytest.raises(EditError) as caught:
        console_only(text)
    assert "'console'" in caught.value.message
    assert "console" in caught.value.hint


def test_entry_without_status_is_an_error():
    with pytest.raises(EditError) as caught:
        console_only('console "/usr/libexec/getty Pc" vt100\n')
    assert "on/off" in caught.value.message
    assert "vt100" in caught.value.message
