import pytest

from tasks.edits.crontab import disable_periodic
from tasks.run.errors import EditError

DAILY = "15\t3\t*\t*\t*\t/bin/sh /etc/daily 2>&1 | tee /var/log/daily.out | sendmail -t\n"
WEEKLY = "30\t4\t*\t*\t6\t/bin/sh /etc/weekly 2>&1 | tee /var/log/weekly.out | sendmail -t\n"
MONTHLY = "#30\t5\t1\t*\t*\t/bin/sh /etc/monthly 2>&1 | tee /var/log/monthly.out | sendmail -t\n"


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(a) == len(b)
    return [(old, new) for old, new in zip(a, b, strict=True) if old != new]


def test_fixture_daily_and_weekly_commented_monthly_untouched(netbsd_file):
    text = netbsd_file("crontab")
    assert DAILY in text
    assert WEEKLY in text
    assert MONTHLY in text
    result = disable_periodic(text)
    assert changed_lines(text, result) == [(DAILY, "#" + DAILY), (WEEKLY, "#" + WEEKLY)]
    assert MONTHLY in result


def test_fixture_edit_is_idempotent(netbsd_file):
    once = disable_periodic(netbsd_file("crontab"))
    assert disable_periodic(once) == once


def test_already_commented_job_is_accepted(netbsd_file):
    text = netbsd_file("crontab")
    assert disable_periodic(text, jobs=("monthly",)) == text
    assert disable_periodic(text, jobs=()) == text


def test_other_paths_do_not_count():
    text = (
        "0 1 * * * /bin/sh /etc/daily.local\n"
        "0 2 * * * /usr/etc/daily\n"
        "0 3 * * * /bin/sh /etc/daily >/dev/null\n"
        "  0 4 * * * /etc/daily\n"
        "\t# 0 5 * * * /etc/daily\n"
    )
    assert disable_periodic(text, jobs=["daily"]) == (
        "0 1 * * * /bin/sh /etc/daily.local\n"
        "0 2 * * * /usr/etc/daily\n"
        "#0 3 * * * /bin/sh /etc/daily >/dev/null\n"
        "#  0 4 * * * /etc/daily\n"
        "\t# 0 5 * * * /etc/daily\n"
    )


def test_job_with_no_line_is_an_error(netbsd_file):
    text = netbsd_file("crontab")
    with pytest.raises(EditError) as caught:
        disable_periodic(text, jobs=("daily", "hourly"))
    assert caught.value.message == (
        "no line running /etc/hourly (commented out or not) found in root's crontab"
    )
    assert "'hourly'" in caught.value.hint


def test_error_leaves_input_alone(netbsd_file):
    text = netbsd_file("crontab")
    with pytest.raises(EditError):
        disable_periodic(text.replace("/etc/weekly", "/etc/weekly.sh"))
    assert DAILY in text


@pytest.mark.parametrize("job", ["", "da ily", "../daily", "daily\n"])
def test_bad_job_name(job):
    with pytest.raises(ValueError, match="not periodic job names"):
        disable_periodic("", jobs=[job])
