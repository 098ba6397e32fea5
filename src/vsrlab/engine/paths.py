"""Where the Hydra configs are: importing this costs nothing, so that a console entry point can name the
config directory (``@hydra.main``) and answer ``--help`` before any heavy import."""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parents[3] / "conf")
