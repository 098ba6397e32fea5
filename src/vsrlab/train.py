"""Deprecated module path: ``python -m vsrlab.train`` still works and runs ``vsrlab.cli.train``
(the ``vsrlab-train`` console script); the library is :mod:`vsrlab.training`."""

from __future__ import annotations

if __name__ == "__main__":
    import warnings

    from vsrlab.cli.train import main

    warnings.warn(
        "`python -m vsrlab.train` is deprecated: use `vsrlab-train` or `python -m vsrlab.cli.train`",
        DeprecationWarning,
        stacklevel=1,
    )
    main()
