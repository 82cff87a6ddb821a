import re

import pytest

from tasks.edits.ttys import domu_ttys
from tasks.run.errors import EditError

CURRENT = "etc.amd64/ttys"
VARIANT = "../_variants/etc/etc.amd64/ttys.rev1.5-lparkes"
# What each release ships on its two console lines, and domus keeps: (console, constty).
SHIPPED = {CURRENT: ("off", "on"), VARIANT: ("on", "off")}


def statuses(text: str) -> dict[str, str]:
    entries = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    return {fields[0]: fields[-2] for fields in entries}


def with_hardware_on(text: str) -> str:
    """The release's ttys with a getty turned on for a wscons screen and a serial port."""
    for name in ("ttyE0", "tty00"):
        start = text.index(f"\n{name}\t") + 1
        end = text.index("\n", start)
        text = text[:start] + re.sub(r"(\s)off(\s)", r"\1on\2", text[start:end]) + text[end:]
    return text


@pytest.mark.parametrize("name", [CURRENT, VARIANT])
def test_the_releases_ttys_is_left_as_it_ships(netbsd_file, name):
    text = netbsd_file(name)
    assert domu_ttys(text) == text
    status = statuses(text)
    assert (status["console"], status["constty"]) == SHIPPED[name]


@pytest.mark.parametrize("name", [CURRENT, VARIANT])
def test_gettys_on_hardware_a_domu_lacks_are_turned_off(netbsd_file, name):
    text = netbsd_file(name)
    switched_on = with_hardware_on(text)
    assert statuses(switched_on)["ttyE0"] == statuses(switched_on)["tty00"] == "on"
    result = domu_ttys(switched_on)
    assert result == text
    status = statuses(result)
    assert len(status) == 14
    assert (status.pop("console"), status.pop("constty")) == SHIPPED[name]
    assert set(status.values()) == {"off"}
    assert domu_ttys(result) == result


def test_only_the_status_word_changes():
    text = (
        "# name getty type status\n"
        "\n"
        '  tty00  "/usr/libexec/getty std.9600 on"   unknown   on  secure  # on purpose\n'
        'console "/usr/libexec/getty Pc" vt100 off secure local # off\n'
        'constty "/usr/libexec/getty Pc" vt100 on secure\n'
        "ttyE0 none on\toff\n"
        'ttyU0 "/usr/libexec/getty std.9600" vt100 on\n'
    )
    assert domu_ttys(text) == (
        "# name getty type status\n"
        "\n"
        '  tty00  "/usr/libexec/getty std.9600 on"   unknown   off  secure  # on purpose\n'
        'console "/usr/libexec/getty Pc" vt100 off secure local # off\n'
        'constty "/usr/libexec/getty Pc" vt100 on secure\n'
        "ttyE0 none on\toff\n"
        'ttyU0 "/usr/libexec/getty std.9600" vt100 off\n'
    )


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: text.replace("constty\t", "#constty\t"),  # NetBSD 9 without constty
        lambda text: text.replace("vt100\ton secure", "vt100\toff secure"),  # both off
    ],
)
def test_no_console_line_on_is_an_error(netbsd_file, edit):
    text = edit(netbsd_file(CURRENT))
    with pytest.raises(EditError) as caught:
        domu_ttys(text)
    assert "neither 'console' nor 'constty' is on" in caught.value.message
    assert "constty" in caught.value.hint


def test_entry_without_status_is_an_error():
    with pytest.raises(EditError) as caught:
        domu_ttys('console "/usr/libexec/getty Pc" vt100\n')
    assert "on/off" in caught.value.message
    assert "vt100" in caught.value.message
