"""Console entry points: thin shells over the apps (:mod:`vsrlab.apps`); each ``main()`` calls
:func:`start` first and runs its app through :func:`run_app`.

A user error (bad data, a missing or unreadable checkpoint or input, a config argument the code does not
take) ends a single run with one line naming the culprit and exit status 1; ``HYDRA_FULL_ERROR=1`` or
``extras.traceback=true`` shows the traceback instead. Internal errors, and every error of a multirun job
(the sweep records it), keep their traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


HELP_FLAGS = frozenset({"--help", "-h", "--hydra-help"})


def start(app: str) -> None:
    """Set up the process (:func:`vsrlab.engine.init`) and refuse command-line keys of earlier versions
    with one line naming the new key (exit status 2); nothing when Hydra is asked for help, which it
    prints without the set-up (and without importing torch)."""
    if HELP_FLAGS & set(sys.argv[1:]):
        return
    from vsrlab.engine.setup import RenamedKeyError, init, refuse_renamed_keys

    init()
    try:
        refuse_renamed_keys(sys.argv[1:], app)
    except RenamedKeyError as error:
        print(f"vsrlab-{app}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


@contextmanager
def command_line(prog: str, argv: list[str] | None) -> Iterator[None]:
    """``sys.argv`` as ``prog argv...`` inside the block (unchanged when ``argv`` is None): a Hydra app's
    ``main(argv)`` called from Python, as its console script runs it."""
    if argv is None:
        yield
        return
    saved = sys.argv
    sys.argv = [prog, *argv]
    try:
        yield
    finally:
        sys.argv = saved


def user_error(error: BaseException) -> str | None:
    """The one-line message of a user error, None for anything else (an internal error)."""
    from hydra.errors import InstantiationException

    from vsrlab.archs.pretrained import IncompatibleCheckpointError
    from vsrlab.data.errors import DataError
    from vsrlab.utils.checkpoint import CheckpointError

    named = (DataError, CheckpointError, FileNotFoundError, NotADirectoryError, PermissionError)
    if isinstance(error, named):
        return str(error)
    if isinstance(error, IncompatibleCheckpointError):
        return str(error.args[0]) if error.args else str(error)
    if isinstance(error, InstantiationException):  # the innermost target and what it refused
        while isinstance(error.__cause__, InstantiationException):
            error = error.__cause__
        cause = error.__cause__
        if isinstance(cause, DataError):  # names its file already
            return str(cause)
        if not isinstance(cause, (TypeError, ValueError)):
            return None
        target = str(error).strip().splitlines()[0].rstrip(":") if str(error).strip() else "config"
        return f"{target}: {cause}"
    return None


def run_app(
    app: str, task: Callable[[Any], Any], cfg: Any, user_errors: tuple[type[BaseException], ...] = ()
) -> Any:
    """``task(cfg)``; a user error of a single run ends it with one line (see the module docstring), as
    does an error of ``user_errors`` (an app's own: e.g. a report's ``ValueError`` naming a bad key)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return task(cfg)
    except Exception as error:
        message = str(error) if isinstance(error, user_errors) else user_error(error)
        multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
        wanted = os.environ.get("HYDRA_FULL_ERROR") == "1" or bool((cfg.get("extras") or {}).get("traceback"))
        if message is None or multirun or wanted:
            raise
        if logging.getLogger().hasHandlers():  # the run's log file keeps it (apps without one: stderr only)
            log.error("%s: %s", type(error).__name__, message)
        print(f"vsrlab-{app}: error: {message}\n(the traceback: HYDRA_FULL_ERROR=1)", file=sys.stderr)
        raise SystemExit(1) from None
