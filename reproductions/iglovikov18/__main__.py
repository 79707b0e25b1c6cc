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
    table    (regenerates the region-importance table from the run records)

The age stages use common.train as it is (train, evaluate, the results table); segmentation and
key points train through common.train.train and are evaluated here (Dice / IoU, pixels).
"""
import argparse
import sys

from reproductions.iglovikov18 import config as ig_config

STAGE_CHOICES = ig_config.STAGES + ("ensemble",)


def _stage_parser():
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--stage", choices=STAGE_CHOICES, default=None)
    p.add_argument("--region", choices=ig_config.REGIONS, default="hand")
    p.add_argument("--small", action="store_true")
    p.add_argument("--variant", default="", help="base variant: '' (paper), small, thumbs, r512")
    return p


def _age_needs_registration(rest, log=print):
    """Real radiographs must be registered by a trained chain before the age stages can use them."""
    from common import data as data_lib
    from reproductions.iglovikov18 import stages
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--data", default=None)
    p.add_argument("--data-dir", default=None)
    args, _ = p.parse_known_args(rest)
    handle = data_lib.resolve(args.data, data_dir=args.data_dir, log=log)
    if not handle.has_keypoints and not stages.is_registered(handle):
        raise SystemExit(
            f"error: {handle.name} has neither key points nor registered canvases. The age networks see the "
            "registered hand: train the segment and keypoints stages, then run `python -m reproductions.iglovikov18 "
            "register --segment-run DIR --keypoints-run DIR --data ...` and train on the folder it writes.")


def _shared_parser(task, command):
    from common import train as common_train
    p = argparse.ArgumentParser(prog=f"python -m reproductions.iglovikov18 {command}")
    common_train.add_shared_flags(p, task)
    p.add_argument("--split", default="test")
    p.add_argument("--no-eval", action="store_true")
    return p


def _train_or_evaluate_stage(command, stage, base, rest):
    """Segmentation or key points: common.train.train, then the stage's own evaluation."""
    from common import data as data_lib
    from common import train as common_train
    from common.runs import RunDir
    from reproductions.iglovikov18 import stages
    from reproductions.iglovikov18.task import TASKS
    task = TASKS[stage]
    args = _shared_parser(task, command).parse_args(rest + ["--variant", ig_config.variant_name(base, stage)])
    evaluate = stages.evaluate_segment if stage == "segment" else stages.evaluate_keypoints
    if command == "train":
        if args.init_from:  # common.train loads it (--init-from); a run of another stage is refused here first
            from reproductions.iglovikov18 import chain
            chain.check_run(args.init_from, (stage,))
            args.set = list(args.set) + [f"{stage}.init_from={args.init_from}"]
        run_dir, _, handle, config = common_train.train(task, args)
        if not args.no_eval and args.split in handle.splits:
            evaluate(task, config, handle, run_dir, split=args.split, limit=args.limit)
        return 0
    config = common_train.make_config(task, args)
    run_dir = common_train.run_dir_of(task, args, config)
    common_train.require_trained(task, run_dir)  # before the data is built: a missing run is said at once
    handle = data_lib.resolve(args.data, data_dir=args.data_dir)
    saved = RunDir(run_dir).config()
    if saved is not None:
        config = saved
    evaluate(task, config, handle, run_dir, split=args.split, limit=args.limit)
    return 0


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
                from common import train as common_train
                from reproductions.iglovikov18 import regions
                from reproductions.iglovikov18.task import AGE_TASK
                variant = ig_config.variant_name(base, known.stage, known.region)
                args, _ = _shared_parser(AGE_TASK, command).parse_known_args([*rest, "--variant", variant])
                if command == "evaluate":  # a missing run is said before the check below builds the data
                    common_train.require_trained(AGE_TASK, common_train.run_dir_of(
                        AGE_TASK, args, common_train.make_config(AGE_TASK, args)))
                _age_needs_registration(rest)
                from reproductions import registry
                status = common_train.main(AGE_TASK, [command, *rest, "--variant", variant],
                                           ablations=registry.ablations())
                if status == 0 and (args.out is None or common_train.in_results(args.out)):  # else left as they are
                    regions.regenerate()
                return status
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
