"""Errors meant for a person: the message says what went wrong, where, and how to fix it.

The CLI prints these without a traceback (exit code 2); other exceptions keep theirs.
"""

from __future__ import annotations


class UserError(Exception):
    """Base for errors caused by input (files, names, options) rather than by a bug."""


class DataError(UserError):
    """A dataset is missing, corrupt, malformed, or empty after filtering."""


class DiskFullError(UserError):
    """A file could not be written for want of space (ENOSPC, a quota, a file-size limit); the message names the
    path and about how much space it needs. Raised by utils' atomic writers, which leave the previous file intact."""


class UnknownNameError(UserError, KeyError):
    """An unknown dataset / model / profile name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
