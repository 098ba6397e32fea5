#!/usr/bin/env bash
# Video extreme SR (x16), issue 15: bicubic / EDVR x16 / the four DKSAN ablation rows, tiny models on the
# embedded synthetic clips, 2 CPU cores. Outputs under ${OUT:-/tmp/xsr}, one job at a time.
set -euo pipefail
OUT=${OUT:-/tmp/xsr}
STEPS=${STEPS:-400}
export WANDB_MODE=offline WANDB_SILENT=true
COMMON=(data=synthetic paths.root_dir="$OUT" paths.log_dir="$OUT" seed=42
  data.train.gt_size=64 data.batch_size=2 data.num_workers=0           # LR patches 4x4 (GT 64), batch 2
  data.val.num_clips=4 data.val.num_frames=3 'data.val.lq_size=[8,8]'  # 4 clips x 3 frames, 8x8 -> 128x128
  trainer.max_steps="$STEPS" trainer.val_check_interval=200 trainer.num_sanity_val_steps=0
  test=false logger=csv extras.print_config=false trainer.enable_progress_bar=false)
TINY_DKSAN=(arch.num_feat=16 arch.num_extract_block=1 arch.deformable_groups=2 'arch.rcab_per_level=[2,2,2,2]'
  arch.squeeze_factor=4 arch.num_frame=3)
TINY_EDVR=(arch.num_feat=16 arch.num_extract_block=1 arch.num_reconstruct_block=2 arch.deformable_groups=2
  arch.num_frame=3)

# the four ablation rows (the recipe of experiment=dksan: Adam 4e-4, Charbonnier eps 1e-3, loss on the x16 output)
for row in backbone channel_attention dkc_align full; do
  vsrlab-train sweep=dksan_ablation row/dksan_ablation=$row run_name=dksan_$row "${COMMON[@]}" "${TINY_DKSAN[@]}"
done
# EDVR x16 (four x2 stages), same data, steps, batch, optimiser, seed
vsrlab-train experiment=edvr_x16 run_name=edvr_x16 "${COMMON[@]}" "${TINY_EDVR[@]}"
# bicubic x16 on the same validation clips
vsrlab-eval arch=bicubic arch.upscale=16 data=synthetic run_name=bicubic_x16 paths.root_dir="$OUT" paths.log_dir="$OUT" \
  data.val.num_clips=4 data.val.num_frames=3 'data.val.lq_size=[8,8]'
# tables, per-level bicubic reference and the figure
python experiments/extreme_sr/summarize.py "$OUT" --figure experiments/extreme_sr/levels.png
