"""Build a dataset as TFRecord shards, ahead of training.

    python -m common.prepare phantoms                       # 2,000 / 400 / 400 at 256 px
    python -m common.prepare rsna:/data/rsna-bone-age       # your manual RSNA download
    python -m common.prepare folder:../shared/data/rsna-thumbs100 --max-side 1024 [--skip-bad]
    python -m common.prepare folder:../shared/data/rsna-sample --split-column source_split   # official test images as "test"

Everything is validated in one pass before anything is written, every offender listed together;
an interrupted build is simply rerun. A dataset built before is reused only while its inputs
(labels, image files, options) are unchanged; otherwise it is rebuilt, saying why.
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
    parser.add_argument("--split-column", default=None, metavar="NAME",
                        help="folder data: the labels column naming each row's split (default 'split'; without one "
                             "a hash of the id splits 80/10/10), e.g. source_split for ../shared/data/rsna-sample")
    parser.add_argument("--skip-bad", action=argparse.BooleanOptionalAction, default=None,
                        help="leave out bad rows/images and write a skipped.csv report instead of failing "
                        "(default: as the existing build of this dataset chose, else off; --no-skip-bad "
                        "rebuilds it strictly)")
    for split in ("train", "validation", "test"):
        parser.add_argument(f"--{split}-labels", default=None, metavar="FILE",
                            help=f"rsna: the {split} label file (CSV/XLSX), if the search by file name finds another")
    args = parser.parse_args(argv)
    try:
        labels = {s: getattr(args, f"{s}_labels") for s in ("train", "validation", "test")}
        handle = data.resolve(args.data, data_dir=args.data_dir, max_side=args.max_side, skip_bad=args.skip_bad,
                              rsna_labels=labels, split_column=args.split_column)
    except (DataError, LabelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        if not data.is_disk_full(e):
            raise
        # `data.build` has removed the half-written folder and put any previous build back.
        where = args.data_dir or data.default_data_dir()
        print(f"error: the disk is full: cannot build {args.data} into {where} "
              f"({str(e).strip().splitlines()[0]}). Nothing was half-written and an earlier build of this "
              f"dataset, if any, is kept as it was; free space (or pass --data-dir on a larger disk) and rerun "
              f"the same command.", file=sys.stderr)
        return 2
    print(f"Ready: {handle.describe()} in {handle.version_dir}")
    print(f"Fingerprint: {handle.fingerprint()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
