"""Build a dataset as TFRecord shards, ahead of training.

    python -m common.prepare phantoms                       # 2,000 / 400 / 400 at 256 px
    python -m common.prepare rsna:/data/rsna-bone-age       # your manual RSNA download
    python -m common.prepare folder:../shared/data/rsna-thumbs100 --max-side 1024 [--skip-bad]

Everything is validated before anything is written; an interrupted build is simply rerun.
"""
import argparse
import sys

from common import data
from common.datasets.base import DEFAULT_MAX_SIDE, DataError
from common.labels import LabelError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="what to build (see common/data.py): phantoms, rsna:PATH, folder:PATH")
    parser.add_argument("--data-dir", default=None, help=f"where datasets live (default ${data.DATA_DIR_ENV} "
                        f"or ~/.boneage-repro/datasets)")
    parser.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE, help="cap on the long side, px")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out bad rows/images and write a skipped.csv report instead of failing")
    for split in ("train", "validation", "test"):
        parser.add_argument(f"--{split}-labels", default=None, metavar="FILE",
                            help=f"rsna: the {split} label file (CSV/XLSX), if the search by file name finds another")
    args = parser.parse_args(argv)
    try:
        labels = {s: getattr(args, f"{s}_labels") for s in ("train", "validation", "test")}
        handle = data.resolve(args.data, data_dir=args.data_dir, max_side=args.max_side, skip_bad=args.skip_bad,
                              rsna_labels=labels)
    except (DataError, LabelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Ready: {handle.describe()} in {handle.version_dir}")
    print(f"Fingerprint: {handle.fingerprint()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
