"""`python -m reproductions compare`: regenerate results/README.md and the comparison plots from run records.

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
    p = sub.add_parser("compare", help="tables (results/README.md) and plots (results/comparison/) from run records")
    p.add_argument("--results", default=str(results.RESULTS_DIR), help="results folder (default: results/)")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    args = parser.parse_args(argv)
    try:
        results.check_results_dir(args.results)  # before the plots: nothing is written to a wrong folder
        runs = [r for r in results.load_runs(args.results) if r.get("evaluations")]  # an unreadable record: its file
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ablations = registry.ablations()  # handed to common/, which imports nothing from reproductions/
    if not args.no_plots:
        compare.plot_all(runs, args.results, ablations=ablations)
    results.regenerate(args.results, ablations=ablations)
    return 0


if __name__ == "__main__":
    sys.exit(main())
