#!/usr/bin/env bash
# The alignment benchmark (issue 23; README.md here): the oracle row (true flow, no training), then the sweep
# of conf/sweep/${EXP}.yaml (one job at a time), then the tables, gates and figure. EXP=alignment_benchmark
# (default: area x4, 5 rows x 3 seeds), EXP=alignment_benchmark_noaa (no anti-aliasing, the gates' 3 rows) or
# EXP=alignment_benchmark_warping (no anti-aliasing: image vs feature warping by the true flow, UDA Table 4) or
# EXP=alignment_benchmark_flow_guidance (no anti-aliasing: flow-guided vs plain DCN, N = 1 vs 9 around a wrong flow)
# or EXP=alignment_benchmark_offset_fidelity (no anti-aliasing: the offset-fidelity loss on / off, 1x and 5x lr).
# Outputs under ${OUT:-/tmp/alignment_benchmark}; finished jobs are skipped on a rerun.
set -euo pipefail
OUT=${OUT:-/tmp/alignment_benchmark}
BIN=${BIN:-.venv/bin}
EXP=${EXP:-alignment_benchmark}
export WANDB_MODE=offline WANDB_SILENT=true
COMMON=(paths.root_dir="$OUT" paths.log_dir="$OUT" logger=csv extras.print_config=false)
case "$EXP" in
  alignment_benchmark) DEGRADATION=area ORACLE=oracle RESULTS=experiments/alignment_benchmark ;;
  alignment_benchmark_noaa) DEGRADATION=bicubic_noaa ORACLE=oracle_noaa RESULTS=experiments/alignment_benchmark/noaa ;;
  alignment_benchmark_warping) DEGRADATION=bicubic_noaa ORACLE=oracle_noaa RESULTS=experiments/alignment_benchmark/warping ;;
  alignment_benchmark_flow_guidance) DEGRADATION=bicubic_noaa ORACLE=oracle_noaa
    RESULTS=experiments/alignment_benchmark/flow_guidance ;;
  alignment_benchmark_offset_fidelity) DEGRADATION=bicubic_noaa ORACLE=oracle_noaa
    RESULTS=experiments/alignment_benchmark/offset_fidelity ;;
  *) echo "EXP must be alignment_benchmark, alignment_benchmark_noaa, alignment_benchmark_warping," \
          "alignment_benchmark_flow_guidance or alignment_benchmark_offset_fidelity, got $EXP" >&2
     exit 2 ;;
esac
[ -f "$OUT/eval/runs/$ORACLE/metrics.json" ] ||
  "$BIN/vsrlab-eval" data=align_bench data.test.degradation="$DEGRADATION" arch=oracle arch.num_frame=5 \
    model.flow_source=batch run_name="$ORACLE" "${COMMON[@]}"
"$BIN/vsrlab-train" -m sweep="$EXP" hydra/launcher=basic trainer.enable_progress_bar=false \
  "${COMMON[@]}" ${ARGS:-}
mkdir -p "$RESULTS"
"$BIN/python" experiments/alignment_benchmark/summarize.py "$OUT/train/multiruns/$EXP" \
  "$OUT/eval/runs/$ORACLE" --out "$RESULTS"
