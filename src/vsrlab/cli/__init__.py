"""Console entry points: thin shells over the apps (:mod:`vsrlab.apps`); each ``main()`` calls
:func:`start` first."""

from __future__ import annotations

import sys


def start(app: str) -> None:
    """Set up the process (:func:`vsrlab.engine.init`) and refuse command-line keys of earlier versions
    with one line naming the new key (exit status 2)."""
    from vsrlab.engine import RenamedKeyError, init, refuse_renamed_keys

    init()
    try:
        refuse_renamed_keys(sys.argv[1:], app)
    except RenamedKeyError as error:
        print(f"vsrlab-{app}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
