"""Errors a user can act on, and nothing else: no CLI framework here (facegen/cli.py maps them to
click's error, which prints the message without a traceback and exits with `exit_code`)."""

from __future__ import annotations

from contextlib import contextmanager


class FacegenError(Exception):
    """A problem with the user's input or environment; the message says what and what to do."""

    exit_code = 2  # what the command line exits with

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # the message as it is now (callers may add to it)
        return self.message


@contextmanager
def user_errors():
    """ValueErrors from the library (bad input met while working) reach the user as FacegenErrors."""
    try:
        yield
    except ValueError as e:
        raise FacegenError(str(e)) from None
