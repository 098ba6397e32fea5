#!/usr/bin/env python
"""Write BI or BD low-resolution frames for a frame-folder dataset, mirroring its folder tree.

    python scripts/make_lr.py data/REDS/train_sharp data/REDS/train_sharp_bicubic/X4
    python scripts/make_lr.py data/vimeo90k/sequences data/vimeo90k/BD_x4 --degradation BD \\
        --clips-from data/vimeo90k/sep_trainlist.txt --workers 8
    python scripts/make_lr.py data/Vid4/GT data/Vid4/BIx4

Every frame SRC/<path>.<ext> (any depth: REDS 000/00000000.png, Vimeo 00001/0001/im1.png,
Vid4 calendar/Frame 001.png) gives DST/<path>.png. BI is MATLAB's imresize(img, 1/scale,
'bicubic'); BD is a Gaussian blur (sigma 0.4*scale, 13x13) keeping every scale-th pixel.
Frames whose size is not a multiple of the scale are mod-cropped first (top-left part kept).
Outputs are written atomically and existing ones are skipped: rerun an interrupted run to finish it.
"""

from __future__ import annotations

import argparse
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("src", help="GT frame folder (clip folders of image frames, any depth)")
    parser.add_argument("dst", help="output folder for the LR frames (PNG)")
    parser.add_argument("--scale", type=int, default=4, help="downscaling factor (default 4)")
    parser.add_argument(
        "--degradation",
        type=str.upper,
        choices=["BI", "BD"],
        default="BI",
        help="BI: MATLAB bicubic; BD: Gaussian blur + subsample (default BI)",
    )
    parser.add_argument(
        "--clips-from",
        metavar="FILE",
        help="text file of clip folders relative to SRC, one per line (e.g. Vimeo-90K's sep_trainlist.txt)",
    )
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default 0: this process)")
    parser.add_argument("--overwrite", action="store_true", help="rewrite existing output frames")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from vsrlab.data.clip_lists import read_clip_list
    from vsrlab.data.errors import DataError
    from vsrlab.data.prepare import make_lr_folder

    try:
        clips = read_clip_list(args.clips_from) if args.clips_from else None
        counts = make_lr_folder(
            args.src,
            args.dst,
            scale=args.scale,
            degradation=args.degradation,
            clips=clips,
            workers=args.workers,
            overwrite=args.overwrite,
            progress=True,
        )
    except (DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"{args.degradation}x{args.scale} {args.dst}: {counts['written']} written, {counts['skipped']} "
        f"skipped (already there), {counts['cropped']} mod-cropped, {counts['total']} frames"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
