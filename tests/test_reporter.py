"""The build's reporter on its own: a bug in a task is one line, colour only when asked."""

from __future__ import annotations

import io

import pytest
from doit.exceptions import TaskError, TaskFailed
from doit.task import Task

from tasks.run.reporter import Reporter


def failing(reporter: Reporter, fail) -> str:
    task = Task("root", [lambda: None], doc="the shared root")
    reporter.initialize({"root": task}, ["root"])
    reporter.execute_task(task)
    reporter.add_failure(task, fail)
    return reporter.out.getvalue()


def a_bug() -> TaskError:
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError as error:
        return TaskError("PythonAction Error", error)


def test_an_exception_in_a_task_is_its_last_line_and_a_hint():
    out = failing(Reporter(io.StringIO(), colour=False, tracebacks=False), a_bug())
    assert out.splitlines() == [
        "FAILED   root           ZeroDivisionError: division by zero",
        "                          hint: this is a bug in domus; DOMUS_DEBUG=1 shows where it "
        "happened",
    ]


def test_with_debugging_the_traceback_is_shown():
    out = failing(Reporter(io.StringIO(), colour=False, tracebacks=True), a_bug())
    assert "Traceback (most recent call last):" in out
    assert 'raise ZeroDivisionError("division by zero")' in out


def test_colour_marks_the_status_on_a_terminal():
    out = failing(Reporter(io.StringIO(), colour=True), TaskFailed("no such file"))
    assert out == "\033[1;31mFAILED  \033[0m root           no such file\n"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("environment", "colour"),
    [
        ({"TERM": "xterm"}, True),
        ({"TERM": "dumb"}, False),
        ({"TERM": "xterm", "NO_COLOR": "1"}, False),
        ({"TERM": "xterm", "NO_COLOR": ""}, True),  # no-color.org: set and not empty
        ({}, False),
    ],
)
def test_colour_only_where_the_terminal_shows_it_and_no_color_is_unset(
    monkeypatch, environment, colour
):
    for name in ("TERM", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert Reporter(Terminal()).colour is colour


def test_a_converged_local_image_is_reported_as_converged_not_built():
    reporter = Reporter(io.StringIO(), colour=False)
    task = Task("local:www1", [lambda: None], doc="local.img of www1 (built once, then kept)")
    reporter.initialize({task.name: task}, [task.name])
    reporter.execute_task(task)
    task.values = {"converged": True}
    reporter.add_success(task)
    assert "local.img of www1: converged (its managed files updated in place)" in (
        reporter.out.getvalue()
    )
    assert "built once" not in reporter.out.getvalue()
