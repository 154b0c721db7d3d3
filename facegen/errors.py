"""Errors a user can act on. The CLI prints their message without a traceback and exits non-zero."""

import click


class FacegenError(click.ClickException):
    """A problem with the user's input or environment; the message says what and what to do."""

    exit_code = 2
