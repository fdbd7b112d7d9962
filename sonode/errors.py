"""Errors a user can act on.

Every error sonode raises for a problem with the user's files or data derives from
:class:`SonodeError`. Its message is one line that says what was wrong (with the offending value)
and what to do, so that the CLI can print ``str(err)`` on stderr and exit non-zero without a
traceback. Programming errors (a wrong argument type from Python code) stay ``TypeError`` /
``ValueError``.
"""

from __future__ import annotations


class SonodeError(Exception):
    """Base class: a problem the user can fix; ``str(err)`` is a complete one-line message."""


class AudioInputError(SonodeError):
    """An input audio file cannot be used: missing, unreadable, corrupt, silent, too short/long..."""


class AudioOutputError(SonodeError):
    """Audio that must not be written, e.g. samples that are NaN or infinite (a diverged render)."""


class ModelFileError(SonodeError):
    """A model file cannot be loaded: missing, corrupt, foreign, of another version, or unsafe."""


class OutputPathError(SonodeError):
    """An output path cannot be used: it names an input file, a folder, or an unwritable place."""
