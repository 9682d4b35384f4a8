"""Exception families. The CLI turns each into one line on stderr and a non-zero exit code."""

from __future__ import annotations


class SarcodecError(Exception):
    """Base class of every error sarcodec raises on purpose."""

    exit_code = 1


class BadInputError(SarcodecError):
    """The user's input (file, array, option value) cannot be used."""

    exit_code = 2


class CorruptFileError(SarcodecError):
    """A file that should be ours (.sarc, dataset, checkpoint) is damaged, truncated or foreign."""

    exit_code = 3


class IncompatibleModelError(SarcodecError):
    """A model or checkpoint does not match what the caller asked for."""

    exit_code = 4


class OutputError(SarcodecError):
    """The output location cannot be written (exists, unwritable, no space)."""

    exit_code = 5
