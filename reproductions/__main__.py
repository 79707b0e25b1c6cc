"""`python -m reproductions compare`: regenerate the results tables and the comparison plots from run records.

    python -m reproductions compare            # results/README.md, results/runs.md, results/comparison/ (each
                                               # experiment's page and plots),
                                               # and the papers' own tables (registry.tables()); prints each file
    python -m reproductions bn-check RUN_DIR   # a run's validation MAE with saved, recomputed and batch BN statistics

The papers themselves run as `python -m reproductions.<paper> train|evaluate|predict`.
"""
import argparse
import sys

from common import compare, results
from common.errors import UsageError
from reproductions import registry


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m reproductions", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compare", help="tables (results/README.md, results/runs.md, the papers' own tables) and plots "
                                       "(results/comparison/) from run records")
    p.add_argument("--results", default=str(results.RESULTS_DIR), help="results folder (default: results/)")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    b = sub.add_parser("bn-check", help="a trained run's MAE with its saved batch-norm averages, with statistics "
                                        "recomputed from training batches, and with batch statistics (common/batchnorm.py)")
    b.add_argument("run_dir")
    b.add_argument("--split", default="validation")
    b.add_argument("--batches", type=int, default=50, help="training batches to recompute the statistics from")
    b.add_argument("--limit", type=int, default=None, help="only the first N examples of each split")
    b.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    if args.command == "bn-check":
        return bn_check(args)
    try:
        results.check_results_dir(args.results)  # before the plots: nothing is written to a wrong folder
        runs = [r for r in results.load_runs(args.results) if r.get("evaluations")]  # an unreadable record: its file
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ablations = registry.ablations()  # handed to common/, which imports nothing from reproductions/
    if not args.no_plots:
        compare.plot_all(runs, args.results, ablations=ablations)
    results.regenerate(args.results, ablations=ablations, tables=registry.tables())
    return 0


def bn_check(args) -> int:
    import importlib
    import json

    from common import batchnorm
    from common.runs import RunDir
    paper = RunDir(args.run_dir).record().get("paper")
    if paper not in registry.PAPERS or paper == "iglovikov18":
        print(f"error: {args.run_dir}: bn-check reads runs of {[p for p in registry.PAPERS if p != 'iglovikov18']}; "
              f"its run.json names {paper!r}", file=sys.stderr)
        return 2
    task = importlib.import_module(f"reproductions.{paper}.task").TASK
    out = batchnorm.diagnose(task, args.run_dir, split=args.split, n_batches=args.batches, data_dir=args.data_dir,
                             limit=args.limit)
    print(f"| {args.split} MAE (months) with | value |\n|---|---|\n"
          f"| the saved moving averages | {out['moving_averages']:.2f} |\n"
          f"| statistics recomputed from {out['recomputed_batches']} training batches | {out['recomputed']:.2f} |\n"
          f"| the same from unaugmented training images | {out['recomputed_unaugmented']:.2f} |\n"
          f"| each batch's own statistics | {out['batch_statistics']:.2f} |")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
