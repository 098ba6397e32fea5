"""``vsrlab-report sweep_dir=<sweep>``: the results table, G x N heatmaps and offset diversity vs PSNR
correlation of a Hydra multirun sweep, with seed statistics and paired differences to a baseline
cell when the sweep has a ``seed`` axis (:mod:`vsrlab.report`).

    vsrlab-report sweep_dir=logs/train/multiruns/offset_diversity
    vsrlab-report sweep_dir=logs/train/multiruns/offset_diversity out=reports/od metric=final
    vsrlab-report sweep_dir=logs/train/multiruns/alignment_seeds 'baseline={experiment:align_none}'

A sweep that cannot be read, or a ``baseline`` that names no swept key, ends with one line naming it
and exit status 1.
"""

from __future__ import annotations

from collections.abc import Mapping

import hydra
from omegaconf import DictConfig, OmegaConf

from vsrlab.cli import command_line, run_app, start
from vsrlab.engine.paths import CONFIG_DIR


def baseline_spec(value: object) -> str | None:
    """The report's ``key=value,...`` baseline of ``baseline=``: a mapping (``{G:1,N:1}``), that
    string itself, ``none`` or null."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def run(cfg: DictConfig) -> None:
    """Write and print the report of ``cfg.sweep_dir``."""
    from vsrlab.apps.report import report
    from vsrlab.report import METRIC_FIELDS

    if cfg.metric not in METRIC_FIELDS:
        raise ValueError(f"metric={cfg.metric}: one of {', '.join(sorted(METRIC_FIELDS))}")
    baseline = cfg.baseline
    baseline = OmegaConf.to_container(baseline) if isinstance(baseline, DictConfig) else baseline
    report(cfg.sweep_dir, cfg.out, cfg.metric, baseline_spec(baseline))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="report")
def hydra_main(cfg: DictConfig) -> None:
    """The Hydra app."""
    run_app("report", run, cfg, user_errors=(ValueError,))


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``vsrlab-report``; ``argv``: its arguments when called from Python (default:
    the command line's). Returns 0; errors exit through ``SystemExit``."""
    with command_line("vsrlab-report", argv):
        start("report")
        hydra_main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
