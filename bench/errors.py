"""The project's own error types: every user-facing failure is one of these.

Each error says *what* is wrong, *where* (a file path or a parameter key path)
and *what to do*, so a message can be shown to a user without a traceback.
"""

from __future__ import annotations

import os


def printable(path) -> str:
    """``path`` as text that can always be printed and written as UTF-8.

    On Linux a file name is bytes; a name that is not valid UTF-8 reaches Python with
    surrogate escapes, which ``print`` and UTF-8 files refuse. Such bytes are shown as
    ``\\xNN`` escapes instead; every other path is returned unchanged.
    """
    text = _as_text(path)
    try:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file system produced
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _as_text(path) -> str:
    return os.fsdecode(path) if isinstance(path, str | bytes | os.PathLike) else str(path)


class AugbenchError(Exception):
    """Base class for every error augbench raises on purpose."""


class ConfigError(AugbenchError):
    """A parameter in params.yaml (or on the command line) is unknown or invalid."""

    def __init__(self, key: str, problem: str, hint: str = ""):
        self.key = key
        self.problem = problem
        self.hint = hint
        msg = f"params: {key}: {problem}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


class DataError(AugbenchError):
    """A dataset file or folder cannot be used."""

    def __init__(self, path, problem: str, hint: str = ""):
        self.path = _as_text(path)
        self.problem = problem
        self.hint = hint
        msg = f"{printable(path)}: {problem}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


class RegistryError(AugbenchError):
    """A plugin name is unknown, duplicated, or a plugin failed to load."""


class NumericalError(AugbenchError):
    """A loss, a prediction or an image became NaN or infinite."""
