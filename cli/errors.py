"""One-line errors for people: what failed and what to do, exit code 2, no traceback."""
import click

__all__ = ["UserError"]


class UserError(click.ClickException):
    """An error caused by the user's input or environment; printed as one line, exit code 2."""

    exit_code = 2

    def format_message(self):
        return self.message
