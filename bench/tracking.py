"""dvclive logs of training and generation.

Logs go to a ``dvclive/`` folder inside a stage's output folder, so DVC caches
them with the stage and ``dvc plots show`` reads them. dvclive only writes files
here: it never edits ``dvc.yaml``, never saves an experiment, never writes a
report, and never opens (or, in a plain Git repository, initialises) a DVC
repository. Logging reads values the stage has already computed, so it cannot
change any number the stage produces.

Quiet mode is in :mod:`bench.quiet`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

# Per-image NST losses in a provenance record → their dvclive metric names.
GENERATION_METRICS = {"loss": "generation/total", "loss_content": "generation/content",
                      "loss_style": "generation/style", "loss_tv": "generation/tv"}


def open_live(folder: str | os.PathLike):
    """A dvclive logger that writes its files to ``folder`` and nothing else (removing the
    files of an earlier run there)."""
    from dvclive import Live

    class FilesOnlyLive(Live):
        def _init_dvc(self):
            # dvclive's own version opens the DVC repository found from the working folder
            # and runs `dvc init` in a Git repository without one; the files are all we need.
            pass

        def post_data_to_studio(self):
            if "data" not in self._studio_events_to_skip:  # only when Studio is configured
                super().post_data_to_studio()

    return FilesOnlyLive(dir=os.fspath(folder), save_dvc_exp=False, dvcyaml=None, report=None)


def epoch_logger(folder: str | os.PathLike):
    """Keras callback: one row per epoch of every value in the epoch logs (``loss`` →
    ``train/loss``, ``val_loss`` → ``eval/loss``, …) under ``folder``."""
    from dvclive.keras import DVCLiveCallback

    return DVCLiveCallback(live=open_live(folder))


def log_generation(folder: str | os.PathLike, provenance: Sequence[dict]) -> bool:
    """One row per synthetic image (step = its index in ``synthetic.npz``) of the final
    NST losses its provenance record carries; nothing when no record has losses.
    Returns whether a log was written."""
    names = [k for k in GENERATION_METRICS if any(k in rec for rec in provenance)]
    if not names:
        return False
    live = open_live(Path(folder))
    for step, rec in enumerate(provenance):
        live.step = step
        for key in names:
            if key in rec:
                live.log_metric(GENERATION_METRICS[key], float(rec[key]))
    live.end()
    return True
