#!/usr/bin/env python
"""Pack a frame folder (GT or LR) into a BasicSR LMDB: DST/data.mdb + DST/meta_info.txt.

    python scripts/make_lmdb.py data/REDS/train_sharp data/REDS/train_sharp.lmdb
    python scripts/make_lmdb.py data/vimeo90k/sequences data/vimeo90k/vimeo90k_train_GT_only4th.lmdb \\
        --clips-from data/vimeo90k/sep_trainlist.txt --frames im4
    python scripts/make_lmdb.py data/vimeo90k/BIx4 data/vimeo90k/vimeo90k_train_LR7frames.lmdb \\
        --clips-from data/vimeo90k/sep_trainlist.txt

Keys are frame paths relative to SRC without extension ('000/00000000', '00001/0001/im4');
values are the frames as PNG at --compress-level; meta_info.txt has one line
'<key>.png (h,w,c) <compress-level>' per image. Name DST '<root>.lmdb': the LMDB backend
(vsrlab.data.stores.open_store) reads <root>.lmdb for a dataset root <root>. Resumable:
rerunning keeps the images already stored; meta_info.txt is written last, so an LMDB without
it is unfinished.
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
    parser.add_argument("src", help="frame folder (clip folders of image frames, any depth)")
    parser.add_argument("dst", help="LMDB folder to create or complete, conventionally <name>.lmdb")
    parser.add_argument(
        "--clips-from",
        metavar="FILE",
        help="text file of clip folders relative to SRC, one per line (e.g. Vimeo-90K's sep_trainlist.txt)",
    )
    parser.add_argument(
        "--frames",
        nargs="+",
        metavar="NAME",
        help="only frames with these names, e.g. --frames im4 (Vimeo-90K GT)",
    )
    parser.add_argument(
        "--compress-level",
        type=int,
        default=1,
        choices=range(10),
        metavar="0-9",
        help="PNG compression level of the stored images (default 1, as BasicSR)",
    )
    parser.add_argument("--batch", type=int, default=1000, help="images per commit (default 1000)")
    parser.add_argument(
        "--map-size",
        type=int,
        metavar="BYTES",
        help="LMDB map size (default: first image's size x count x 10, doubled when full)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from vsrlab.data.clip_lists import read_clip_list
    from vsrlab.data.errors import DataError
    from vsrlab.data.prepare import make_lmdb

    try:
        clips = read_clip_list(args.clips_from) if args.clips_from else None
        counts = make_lmdb(
            args.src,
            args.dst,
            clips=clips,
            frames=args.frames,
            compress_level=args.compress_level,
            batch=args.batch,
            map_size=args.map_size,
            progress=True,
        )
    except (DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"{args.dst}: {counts['written']} written, {counts['skipped']} skipped (already stored), "
        f"{counts['total']} images listed in meta_info.txt"
    )
    if counts["extra"]:
        print(
            f"note: {counts['extra']} other keys in {args.dst} are not listed in meta_info.txt",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
