"""`python -m reproductions.iglovikov18 COMMAND ...`: the whole chain in one command, or one stage at a time.

    chain    --variant thumbs|r512|small --data SPEC [--precision P] [--init-from-data SPEC --init-from-variant BASE]
             [--regions hand [carpal metacarpal]] [--eval-data SPEC --split-column COL] [--dry-run]
             (segment, keypoints, register, the age networks region by region, the ensemble [, the same
             evaluated on --eval-data]: the commands below, in order, through their library calls;
             a step already complete is skipped, so an interrupted chain resumes by rerunning it;
             chain_command.py)
    train    --stage segment|keypoints|regress|classify [--region hand|carpal|metacarpal] [shared flags]
             [--init-from RUN_DIR]   (start from a trained run of the same stage: common/init_from.py)
             (--variant r512scratch: r512's age networks from random weights, on r512's registered canvases)
    evaluate --stage segment|keypoints|regress|classify|ensemble [--region ...] [shared flags]
    register [--segment-run DIR --keypoints-run DIR] --data SPEC [--small|--variant thumbs|r512]
             (writes the dataset's registered canvases as a folder dataset for the age stages)
    refine-masks --segment-run DIR --data SPEC   (the U-Net's masks that agree with the bootstrap -> pseudo_masks.npz)
    predict  FILES --sex M|F | --sex-csv FILE [--data SPEC] [--small|--variant thumbs|r512] [--age-data SPEC]
             [--segment-run DIR --keypoints-run DIR --age-runs DIR ...]
             (the whole chain on raw radiographs; without run flags, the runs `train` makes from the same
             --data and variant, the age runs' from --age-data: default --data for phantoms, else the
             folder `register` writes; the CSV names each run used and its commit)
    figures  [--data SPEC] [--segment-run DIR --keypoints-run DIR]   (README figures on ../shared/data/rsna-sample)
    table    (regenerates the region-importance table from the run records; `python -m reproductions
             compare` regenerates it too)

Flags are parsed here and by common/cli.py into a RunOptions, and handed to the library calls of
commands.py (train_stage, evaluate_stage, train_age, evaluate_age, register_data) and ensemble.py
(evaluate_ensemble), which `chain` calls too: the age stages call the library of common/train.py as
it is (train_and_evaluate, evaluate); segmentation and key points train through common.train.train
and are evaluated by stages.py (Dice / IoU, pixels). train and evaluate leave the tables
alone: `python -m reproductions compare` regenerates results/README.md and the region table
(handed to it by reproductions/registry.py), `... iglovikov18 table` the region table alone.
"""
import argparse
import sys

from reproductions.iglovikov18 import config as ig_config
from reproductions.iglovikov18.variants import Variant

STAGE_CHOICES = ig_config.STAGES + ("ensemble",)


def _stage_parser():
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--stage", choices=STAGE_CHOICES, default=None)
    p.add_argument("--region", choices=ig_config.REGIONS, default="hand")
    p.add_argument("--small", action="store_true")
    p.add_argument("--variant", default="", help="base variant: '' (paper), small, thumbs, r512, "
                   "r512scratch (r512's age networks from random weights)")
    return p


def _stage_options(task, command, rest, variant):
    """The RunOptions of a segment or keypoints stage's flags (common/cli.py's shared flags)."""
    import dataclasses

    from common import cli
    p = cli.OneLineParser(prog=f"python -m reproductions.iglovikov18 {command}")
    cli.add_shared_flags(p, task)
    p.add_argument("--split", default="test")
    p.add_argument("--no-eval", action="store_true")
    return dataclasses.replace(cli.options_from(p.parse_args(rest)), variant=variant)


def _train_or_evaluate_stage(command, stage, base, rest):
    """Segmentation or key points: the flags parsed, then commands.train_stage or evaluate_stage."""
    from common import cli
    from reproductions.iglovikov18 import commands
    from reproductions.iglovikov18.task import TASKS
    options = _stage_options(TASKS[stage], command, rest, Variant(base, stage).name)
    run = commands.train_stage if command == "train" else commands.evaluate_stage
    cli.where_it_landed(run(stage, base, options))
    return 0


def _train_or_evaluate_age(command, stage, region, base, rest):
    """An age stage (regress or classify, one region): the flags parsed, then commands.train_age or evaluate_age."""
    import dataclasses

    from common import cli
    from reproductions.iglovikov18 import commands
    from reproductions.iglovikov18.task import AGE_TASK
    _, options = cli.parse(AGE_TASK, [command, *rest])
    options = dataclasses.replace(options, variant=Variant(base, stage, region).name)

    def go():
        run = commands.train_age if command == "train" else commands.evaluate_age
        run_dir = run(stage, region, base, options)
        if run_dir is None:  # a process of several that does not write the run directory
            return
        cli.where_it_landed(run_dir)
        print("The region table (results/iglovikov18/regions.md) was not changed either: `python -m reproductions "
              "compare` regenerates it with the other tables (`python -m reproductions.iglovikov18 table`: it alone).")
    return cli.guarded(go)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    from common.datasets.base import DataError
    from common.errors import UsageError
    from common.labels import LabelError
    from reproductions.iglovikov18.chain import RunError
    try:
        if command in ("train", "evaluate"):
            known, rest = _stage_parser().parse_known_args(rest)
            if known.stage is None:
                raise SystemExit(f"error: {command} needs --stage ({', '.join(STAGE_CHOICES)})")
            from reproductions.iglovikov18.commands import base_variant
            base = base_variant(known, known.stage)
            if known.stage == "ensemble":
                if command == "train":
                    raise SystemExit("error: the ensemble has nothing to train: `evaluate --stage ensemble`")
                from reproductions.iglovikov18 import ensemble
                return ensemble.main(base, rest)
            if known.stage in ig_config.AGE_STAGES:
                return _train_or_evaluate_age(command, known.stage, known.region, base, rest)
            return _train_or_evaluate_stage(command, known.stage, base, rest)
        if command == "chain":
            from reproductions.iglovikov18 import chain_command
            return chain_command.main(rest)
        if command == "register":
            from reproductions.iglovikov18 import commands
            return commands.register(rest)
        if command == "refine-masks":
            from reproductions.iglovikov18 import commands
            return commands.refine_masks(rest)
        if command == "predict":
            from reproductions.iglovikov18 import commands
            return commands.predict(rest)
        if command == "figures":
            from reproductions.iglovikov18 import figures
            return figures.main(rest)
        if command == "table":
            from reproductions.iglovikov18 import regions
            regions.regenerate()
            return 0
        raise SystemExit(f"error: unknown command {command!r}; expected chain, train, evaluate, register, "
                         "refine-masks, predict, figures or table")
    except (DataError, LabelError, RunError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
