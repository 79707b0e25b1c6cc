"""`python -m reproductions.iglovikov18 COMMAND --stage STAGE ...`: the chain, one stage at a time.

    train    --stage segment|keypoints|regress|classify [--region hand|carpal|metacarpal] [shared flags]
             [--init-from RUN_DIR]   (start from a trained run of the same stage: common/init_from.py)
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

Flags are parsed by common/cli.py into a RunOptions; the age stages then call the library of
common/train.py as it is (train_and_evaluate, evaluate); segmentation and key points train through
common.train.train and are evaluated here (Dice / IoU, pixels). train and evaluate leave the tables
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
    p.add_argument("--variant", default="", help="base variant: '' (paper), small, thumbs, r512")
    return p


def _age_needs_registration(options, log=print):
    """Real radiographs must be registered by a trained chain before the age stages can use them."""
    from common import data as data_lib
    from reproductions.iglovikov18 import stages
    handle = data_lib.resolve(options.data, data_dir=options.data_dir, log=log)
    if not handle.has_keypoints and not stages.is_registered(handle):
        raise SystemExit(
            f"error: {handle.name} has neither key points nor registered canvases. The age networks see the "
            "registered hand: train the segment and keypoints stages, then run `python -m reproductions.iglovikov18 "
            "register --segment-run DIR --keypoints-run DIR --data ...` and train on the folder it writes.")


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
    """Segmentation or key points: common.train.train, then the stage's own evaluation."""
    import dataclasses

    from common import cli
    from common import data as data_lib
    from common import train as common_train
    from common.runs import RunDir
    from reproductions.iglovikov18 import stages
    from reproductions.iglovikov18.task import TASKS
    task = TASKS[stage]
    options = _stage_options(task, command, rest, Variant(base, stage).name)
    evaluate = stages.evaluate_segment if stage == "segment" else stages.evaluate_keypoints
    if command == "train":
        if options.init_from:  # common.train loads it (--init-from); a run of another stage is refused here first
            from reproductions.iglovikov18 import chain
            chain.check_run(options.init_from, (stage,))
            options = dataclasses.replace(options, overrides=(*options.overrides,
                                                              f"{stage}.init_from={options.init_from}"))
        run_dir, _, handle, config = common_train.train(task, options)
        if not options.no_eval and options.split in handle.splits:
            evaluate(task, config, handle, run_dir, split=options.split, limit=options.limit)
        cli.where_it_landed(run_dir)
        return 0
    run_dir, config = common_train.named_run(task, options)  # before the data is built: a missing run is said at once
    handle = data_lib.resolve(options.data, data_dir=options.data_dir)
    saved = RunDir(run_dir).config()
    if saved is not None:
        config = saved
    evaluate(task, config, handle, run_dir, split=options.split, limit=options.limit)
    cli.where_it_landed(run_dir)
    return 0


def _train_or_evaluate_age(command, stage, region, base, rest):
    """An age stage (regress or classify, one region): common.train's train_and_evaluate or evaluate."""
    import dataclasses

    from common import cli
    from common import train as common_train
    from reproductions.iglovikov18.task import AGE_TASK
    variant = Variant(base, stage, region).name
    _, options = cli.parse(AGE_TASK, [command, *rest])
    options = dataclasses.replace(options, variant=variant)

    def go():
        if command == "evaluate":
            run_dir, _ = common_train.named_run(AGE_TASK, options)  # said before the check below builds the data
            _age_needs_registration(options)
            common_train.evaluate(AGE_TASK, options, run_dir=run_dir)
        else:
            _age_needs_registration(options)
            run_dir = common_train.train_and_evaluate(AGE_TASK, options)
            if not common_train.writes_run_dir():
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
            base = base_variant(known)
            if known.stage == "ensemble":
                if command == "train":
                    raise SystemExit("error: the ensemble has nothing to train: `evaluate --stage ensemble`")
                from reproductions.iglovikov18 import ensemble
                return ensemble.main(base, rest)
            if known.stage in ig_config.AGE_STAGES:
                return _train_or_evaluate_age(command, known.stage, known.region, base, rest)
            return _train_or_evaluate_stage(command, known.stage, base, rest)
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
        raise SystemExit(f"error: unknown command {command!r}; expected train, evaluate, register, refine-masks, "
                         "predict, figures or table")
    except (DataError, LabelError, RunError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
