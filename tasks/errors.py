"""Errors an operator can act on: what went wrong, and how to fix it."""

from __future__ import annotations


class DomusError(Exception):
    """A failure with a message for the operator and, where one exists, a way forward."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class EditError(DomusError):
    """A text edit of a NetBSD file could not find the anchor it needs."""
