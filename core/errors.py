"""One error vocabulary for both backends.

Backends translate `sqlite3`, `botocore` and OS errors into these at their boundary, so pages
and tests handle one set of exceptions whatever the backend. Every message is meant to be
shown to a user as it is: it says what went wrong and, where possible, what to do.
"""

from __future__ import annotations


class ConsoleError(Exception):
    """Base class of every error the console raises on purpose."""


class InvalidInputError(ConsoleError, ValueError):
    """The user's input (a file, a form field, a name) cannot be used."""


class NotFoundError(ConsoleError, KeyError):
    """A job, dataset, object or endpoint of that name does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class AlreadyExistsError(ConsoleError):
    """A resource of that name exists already."""


class BackendError(ConsoleError):
    """The backend (local processes, S3, SageMaker) failed to do what was asked."""


class CredentialsError(BackendError):
    """No usable AWS credentials, or they were refused."""


class ConfigError(ConsoleError):
    """The settings file or environment holds an invalid value."""
