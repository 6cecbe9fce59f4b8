"""Shared by the resume tests: a training interrupted after its n-th epoch checkpoint, then resumed."""

from __future__ import annotations

import pytest


class Stop(Exception):
    """Raised in place of a checkpoint save: the process "dies" there."""


def interrupted_then_resumed(monkeypatch, fit, path, key: str = "run", after: int = 2):
    """``fit(checkpoint)`` stopped at its ``after + 1``-th checkpoint save (``after`` saved), then
    ``fit`` again from the saved checkpoint at ``path``; returns the resumed fit's result."""
    from bench import training

    original, saved = training.Checkpoint.save, []

    def save(self, *args, **kwargs):
        if len(saved) == after:
            raise Stop
        saved.append(original(self, *args, **kwargs))

    monkeypatch.setattr(training.Checkpoint, "save", save)
    with pytest.raises(Stop):
        fit(training.Checkpoint(path, key))
    monkeypatch.undo()
    return fit(training.Checkpoint(path, key))
