"""``vsrlab-train``: train a VSR model from the Hydra config in ``conf/train.yaml``.

    vsrlab-train                                  # default experiment on the synthetic data
    vsrlab-train debug=fdr                        # one train and one val batch
    vsrlab-train experiment=align_flow            # a recipe from conf/experiment/
    vsrlab-train run_name=my_run                  # resume (or skip, if finished) logs/train/runs/my_run
    vsrlab-train -m sweep=offset_diversity        # a sweep (conf/sweep/); relaunching it resumes its jobs

Extra DDP ranks started by Lightning run ``python -m vsrlab.cli.train`` on the job's resolved config
(:data:`vsrlab.engine.setup.TRAIN_MODULE`). A process that runs a job records stop signals from its first
statement (:data:`vsrlab.cluster.signals.STOP`), so the imports come after it.
"""

from __future__ import annotations

import sys
from typing import Any

from vsrlab.cluster.signals import STOP


def run(cfg: Any) -> float | None:
    """The Hydra task: one run, or one job of a multirun; returns the optimized metric."""
    from vsrlab.apps.train import train
    from vsrlab.cli import run_app
    from vsrlab.engine import setup_run

    setup_run(cfg)
    results = run_app("train", train, cfg)
    metric = cfg.get("optimized_metric")
    return results.get("val", {}).get(metric) if metric else None


def main() -> None:
    """Console entry point ``vsrlab-train``."""
    if not {"-m", "--multirun"} & set(sys.argv[1:]):  # this process runs the job itself
        STOP.install()
    import hydra

    from vsrlab.cli import start
    from vsrlab.engine.ddp import refuse_sweep_on_secondary_rank
    from vsrlab.engine.paths import CONFIG_DIR

    start("train")
    refuse_sweep_on_secondary_rank()
    hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")(run)()


if __name__ == "__main__":
    main()
