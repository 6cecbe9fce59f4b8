"""The quiet mode of the command line (``augbench --quiet …``, ``augbench run --quiet``,
``AUGBENCH_QUIET=1``): warnings, errors and summary lines only — no progress bars, no Keras
epoch lines, no INFO log records. It is carried to child processes (the stages ``dvc repro``
starts) by the ``AUGBENCH_QUIET`` environment variable. A command-line concern that changes no
number a stage computes, so it lives outside the modules DVC stages depend on.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

QUIET_ENV = "AUGBENCH_QUIET"


def is_quiet() -> bool:
    return os.environ.get(QUIET_ENV, "") not in ("", "0")


@contextlib.contextmanager
def quiet_mode(enabled: bool = True) -> Iterator[None]:
    """While active: INFO records dropped, every tqdm bar disabled, ``AUGBENCH_QUIET=1``
    set for child processes. Everything is put back on exit."""
    if not enabled:
        yield
        return
    from tqdm import std

    root = logging.getLogger()
    level, env, init = root.level, os.environ.get(QUIET_ENV), std.tqdm.__init__

    def silent_init(self, *args, **kwargs):
        kwargs["disable"] = True  # callers pass disable= explicitly, so TQDM_DISABLE would not do
        init(self, *args, **kwargs)

    root.setLevel(logging.WARNING)
    os.environ[QUIET_ENV] = "1"
    std.tqdm.__init__ = silent_init
    try:
        yield
    finally:
        std.tqdm.__init__ = init
        root.setLevel(level)
        if env is None:
            os.environ.pop(QUIET_ENV, None)
        else:
            os.environ[QUIET_ENV] = env
