#!/usr/bin/env bash
# The alignment benchmark (issue 23; README.md here): the oracle row (true flow, no training), then the sweep
# of conf/experiment/alignment_benchmark.yaml (6 rows x 3 seeds, one job at a time), then the tables, gates
# and figure. Outputs under ${OUT:-/tmp/alignment_benchmark}; finished jobs are skipped on a rerun.
set -euo pipefail
OUT=${OUT:-/tmp/alignment_benchmark}
BIN=${BIN:-.venv/bin}
export WANDB_MODE=offline WANDB_SILENT=true
COMMON=(paths.root_dir="$OUT" paths.log_dir="$OUT" logger=csv extras.print_config=false)
[ -f "$OUT/eval/runs/oracle/metrics.json" ] ||
  "$BIN/vsrlab-eval" data=align_bench arch=oracle arch.num_frame=5 model.flow_source=batch run_name=oracle "${COMMON[@]}"
"$BIN/vsrlab-train" -m experiment=alignment_benchmark hydra/launcher=basic trainer.enable_progress_bar=false \
  "${COMMON[@]}" ${ARGS:-}
"$BIN/python" experiments/alignment_benchmark/summarize.py "$OUT/train/multiruns/alignment_benchmark" \
  "$OUT/eval/runs/oracle" --out experiments/alignment_benchmark
