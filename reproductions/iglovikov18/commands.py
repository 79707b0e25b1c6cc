"""The chain's commands as library calls, on typed arguments (the CLI, `__main__.py`, parses argv):
`train_stage` / `evaluate_stage` (segment, keypoints), `train_age` / `evaluate_age` (one age network),
`register_data` (a dataset through the trained chain), and `predict` (the whole chain on radiographs).
`chain_command.py` runs them all in order."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from reproductions.iglovikov18 import config as ig_config
from reproductions.iglovikov18.variants import Variant


def base_variant(args, stage: str | None = None) -> str:
    """The base variant of --small / --variant ("", small, thumbs, r512, r512scratch); stage and region come
    from elsewhere. `stage`: the network the command trains or evaluates; None for the commands that run
    the chain's U-Net and key points (register, predict, chain), which a RANDOM_START base does not have."""
    from common.errors import UsageError
    from reproductions.iglovikov18.variants import AGE_STAGES, ENSEMBLE, RANDOM_START
    base = "small" if args.small else args.variant
    if base not in ig_config.BASES:
        raise UsageError(f"--variant {base!r}: unknown base variant; expected one of "
                         f"{[b for b in ig_config.BASES if b]} or none (the paper's); stage and region come from "
                         "--stage and --region")
    if base in RANDOM_START and stage not in AGE_STAGES + (ENSEMBLE,):
        source = RANDOM_START[base]
        raise UsageError(f"--variant {base}: {source}'s age networks from random weights, nothing else; the U-Net, "
                         f"key points and registered canvases are {source}'s: train --stage regress|classify "
                         f"--variant {base} --data <the folder `register --variant {source}` wrote>")
    return base


# --- which runs: the ones the flags name, never the newest --------------------------------------
# Which networks answered must not depend on what was trained last: without --segment-run,
# --keypoints-run or --age-runs, a command uses the runs `train` makes from its --data and variant.

def stage_run_dir(data_name: str, base: str, stage: str, region: str | None = None) -> Path:
    """The run directory `train --stage STAGE [--region R]` makes from the same --data and base variant."""
    from common import train as common_train
    from reproductions.iglovikov18.task import TASKS
    variant = Variant(base, stage, region)
    config = ig_config.get_config(variant)
    config.variant = variant.name  # as common.train.make_config names it
    return common_train.default_run_dir(TASKS[stage], data_name, config)


def named_run(given, stage: str, data_name: str, base: str) -> Path:
    """--STAGE-run when given (load_run checks it), else the run the flags name, which must be trained."""
    from common import train as common_train
    from reproductions.iglovikov18.task import TASKS
    if given:
        return Path(given)
    run = stage_run_dir(data_name, base, stage)
    common_train.require_trained(TASKS[stage], run, what=f"iglovikov18 {stage}", instead=f"--{stage}-run DIR")
    return run


def registered_name(data_name: str, base: str, image_size: int) -> str:
    """The folder (and folder dataset) name `register` gives a dataset's canvases."""
    return f"{data_name.split('/')[-1]}-registered-{base or 'paper'}-{image_size}px"


def age_data_name(data_name: str, base: str) -> str:
    """The dataset the age networks of a chain trained on `data_name` train on: phantoms carry key
    points, so the age stages read them directly; any other data goes through `register` first."""
    if data_name.startswith("phantoms/"):
        return data_name
    size = ig_config.hand_config(base).data.image_size
    return f"folder/{registered_name(data_name, base, size)}"


def named_age_runs(given, data_name: str, base: str, log=print) -> list[Path]:
    """--age-runs when given, else the trained ones of the six age networks (3 regions x 2 heads)
    that the flags name; at least one must be trained."""
    from common import train as common_train
    from common.errors import UsageError
    if given:
        return [Path(r) for r in given]
    runs = [stage_run_dir(data_name, base, v.stage, v.region) for v in Variant.age_networks(base)]
    trained = [r for r in runs if common_train.trained_weights(r)]
    if not trained:
        raise UsageError(f"no trained iglovikov18 age network in {runs[0].parent} for {data_name}: none of "
                         f"{', '.join(r.name for r in runs)} has checkpoints/best.weights.h5 or last.weights.h5. "
                         "Train them with that --data and the same --small/--variant, or pass --age-data SPEC or "
                         "--age-runs DIR ...")
    untrained = [r.name for r in runs if r not in trained]
    if untrained:
        log(f"Not trained, so not in the estimate: {', '.join(untrained)} (in {runs[0].parent}).")
    return trained


def add_chain_flags(p: argparse.ArgumentParser):
    """The flags that name the segment and key-point runs of a chain (as `train --stage` names them)."""
    p.add_argument("--data", default=None, help="the dataset the segment and keypoints runs were trained on, as "
                   "given to `train` (default: $BONEAGE_RSNA_DIR if set, else phantoms)")
    p.add_argument("--data-dir", default=None, help="where built datasets live (default $BONEAGE_DATA_DIR)")
    p.add_argument("--segment-run", default=None, help="segment run directory (default: the one --data and "
                   "--small/--variant name)")
    p.add_argument("--keypoints-run", default=None, help="keypoints run directory (default: the one --data and "
                   "--small/--variant name)")


def chain_runs(args, data_name: str, base: str) -> tuple[Path, Path]:
    """(segment run, keypoints run): the ones given, else the ones --data and the variant name."""
    return (named_run(args.segment_run, "segment", data_name, base),
            named_run(args.keypoints_run, "keypoints", data_name, base))


# --- train and evaluate one network -------------------------------------------------------------

def age_needs_registration(options, log=print):
    """Real radiographs must be registered by a trained chain before the age stages can use them."""
    from common import data as data_lib
    from common.errors import UsageError
    from reproductions.iglovikov18 import stages
    handle = data_lib.resolve(options.data, data_dir=options.data_dir, log=log)
    if not handle.has_keypoints and not stages.is_registered(handle):
        raise UsageError(
            f"{handle.name} has neither key points nor registered canvases. The age networks see the "
            "registered hand: train the segment and keypoints stages, then run `python -m reproductions.iglovikov18 "
            "register --segment-run DIR --keypoints-run DIR --data ...` and train on the folder it writes.")


def train_stage(stage: str, base: str, options, log=print) -> Path:
    """Segmentation or key points (`train --stage segment|keypoints`): common.train.train, then the
    stage's own evaluation on options.split unless options.no_eval. Returns the run directory."""
    import dataclasses

    from common import train as common_train
    from reproductions.iglovikov18 import chain as ig_chain
    from reproductions.iglovikov18 import stages
    from reproductions.iglovikov18.task import TASKS
    task = TASKS[stage]
    options = dataclasses.replace(options, variant=Variant(base, stage).name)
    evaluate = stages.evaluate_segment if stage == "segment" else stages.evaluate_keypoints
    if options.init_from:  # common.train loads it (--init-from); a run of another stage is refused here first
        ig_chain.check_run(options.init_from, (stage,))
        options = dataclasses.replace(options, overrides=(*options.overrides, f"{stage}.init_from={options.init_from}"))
    run_dir, _, handle, config = common_train.train(task, options, log=log)
    if not options.no_eval and options.split in handle.splits:
        evaluate(task, config, handle, run_dir, split=options.split, limit=options.limit, log=log)
    return run_dir


def evaluate_stage(stage: str, base: str, options, log=print) -> Path:
    """`evaluate --stage segment|keypoints`: the trained run the options name, on options.split."""
    import dataclasses

    from common import data as data_lib
    from common import train as common_train
    from common.runs import RunDir
    from reproductions.iglovikov18 import stages
    from reproductions.iglovikov18.task import TASKS
    task = TASKS[stage]
    options = dataclasses.replace(options, variant=Variant(base, stage).name)
    evaluate = stages.evaluate_segment if stage == "segment" else stages.evaluate_keypoints
    run_dir, config = common_train.named_run(task, options)  # before the data is built: a missing run is said at once
    handle = data_lib.resolve(options.data, data_dir=options.data_dir)
    saved = RunDir(run_dir).config()
    if saved is not None:
        config = saved
    evaluate(task, config, handle, run_dir, split=options.split, limit=options.limit, log=log)
    return run_dir


def train_age(stage: str, region: str, base: str, options, log=print) -> Path | None:
    """An age network (`train --stage regress|classify --region R`): common.train.train_and_evaluate.
    Returns the run directory (None on a process of several that does not write it)."""
    import dataclasses

    from common import train as common_train
    from reproductions.iglovikov18.task import AGE_TASK
    options = dataclasses.replace(options, variant=Variant(base, stage, region).name)
    age_needs_registration(options, log)
    run_dir = common_train.train_and_evaluate(AGE_TASK, options, log=log)
    return run_dir if common_train.writes_run_dir() else None


def evaluate_age(stage: str, region: str, base: str, options, log=print) -> Path:
    """`evaluate --stage regress|classify --region R [--eval-data SPEC]`: common.train.evaluate."""
    import dataclasses

    from common import train as common_train
    from reproductions.iglovikov18.task import AGE_TASK
    options = dataclasses.replace(options, variant=Variant(base, stage, region).name)
    run_dir, _ = common_train.named_run(AGE_TASK, options)  # said before the check below builds the data
    age_needs_registration(options, log)
    common_train.evaluate(AGE_TASK, options, run_dir=run_dir, log=log)
    return run_dir


# --- register --------------------------------------------------------------------------------

def registered_dir(data_name: str, base: str, data_dir=None, image_size: int | None = None) -> Path:
    """The folder `register` writes a dataset's canvases to by default (<data dir>/iglovikov18-registered/NAME)."""
    from common import data as data_lib
    size = image_size or ig_config.hand_config(base).data.image_size
    root = Path(data_dir) if data_dir else data_lib.default_data_dir()
    return root / "iglovikov18-registered" / registered_name(data_name, base, size)


def register_data(data, base: str, *, data_dir=None, segment_run=None, keypoints_run=None, image_size=None,
                  out=None, limit=None, split_column=None, log=print) -> Path:
    """Writes a dataset's registered canvases as a folder dataset (`register`); returns the folder.
    segment_run / keypoints_run None: the runs `train` makes from the same data and base variant."""
    from common import data as data_lib
    from common import train as common_train
    from reproductions.iglovikov18 import chain as ig_chain
    from reproductions.iglovikov18 import stages
    age_config = ig_config.hand_config(base)
    if image_size:
        age_config.data.image_size = image_size
    data_name = common_train.dataset_name(data, data_dir, log, split_column=split_column)
    segment_run = named_run(segment_run, "segment", data_name, base)
    keypoints_run = named_run(keypoints_run, "keypoints", data_name, base)
    handle = data_lib.resolve(data, data_dir=data_dir, log=log, split_column=split_column)
    chain = ig_chain.Chain(segment_run, keypoints_run, log=log)
    out = Path(out) if out else registered_dir(handle.name, base, data_dir, age_config.data.image_size)
    stages.register_dataset(chain, handle, age_config, out, log=log, limit=limit)
    registered = data_lib.resolve(f"folder:{out}", data_dir=data_dir, log=log)
    log(f"Registered {registered.describe()} into {out}. Train the age stages with --data {registered.name} "
        f"(or --data folder:{out}).")
    return out


def register(argv, log=print):
    p = argparse.ArgumentParser(prog="python -m reproductions.iglovikov18 register",
                                description="Writes a dataset's registered canvases as a folder dataset.")
    add_chain_flags(p)
    p.add_argument("--small", action="store_true")
    p.add_argument("--variant", default="", help="base variant whose canvas size is used: '', small, thumbs, r512")
    p.add_argument("--image-size", type=int, default=None, help="canvas height in px (default: the variant's)")
    p.add_argument("--out", default=None, help="folder to write (default: <data dir>/iglovikov18-registered/...)")
    p.add_argument("--limit", type=int, default=None, help="only the first N examples of each split")
    p.add_argument("--split-column", default=None, help="folder data: the labels column naming each row's split "
                   "(e.g. source_split for ../shared/data/rsna-sample's official test images); the canvases keep it")
    args = p.parse_args(argv)
    register_data(args.data, base_variant(args), data_dir=args.data_dir, segment_run=args.segment_run,
                  keypoints_run=args.keypoints_run, image_size=args.image_size, out=args.out, limit=args.limit,
                  split_column=args.split_column, log=log)
    return 0


# --- predict ---------------------------------------------------------------------------------

def predict(argv, log=print):
    from common import images
    from common import train as common_train
    from reproductions.iglovikov18 import chain as ig_chain
    p = argparse.ArgumentParser(prog="python -m reproductions.iglovikov18 predict",
                                description="Bone age of raw radiographs through the whole chain.")
    p.add_argument("files", nargs="+", help="image files (PNG, JPEG, DICOM) or folders")
    p.add_argument("--sex", default=None, help="M or F, for every file")
    p.add_argument("--sex-csv", default=None, help="CSV with columns id (file stem) and sex (M/F)")
    add_chain_flags(p)
    p.add_argument("--small", action="store_true", help="the small variant's runs (same as --variant small)")
    p.add_argument("--variant", default="", help="base variant of the runs: '' (the paper's), small, thumbs, r512")
    p.add_argument("--age-data", default=None, help="the dataset the age networks were trained on (default: --data "
                   "for phantoms, else the folder `register` writes from --data)")
    p.add_argument("--age-runs", nargs="+", default=None, help="age run directories; their mean is the estimate "
                   "(default: the trained ones of the six that --age-data and --small/--variant name)")
    p.add_argument("--output-csv", default="predictions.csv")
    p.add_argument("--canvas-dir", default=None, help="also write each registered canvas and mask here")
    args = p.parse_args(argv)

    files = []
    for item in args.files:
        path = Path(item)
        files.extend(sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in images.IMAGE_SUFFIXES
                            and not f.name.startswith(".")) if path.is_dir() else [path])
    if not files:
        raise SystemExit("error: no image files given")
    sexes = common_train.read_sex(files, args.sex, args.sex_csv)
    unknown = [str(f) for f, s in sexes.items() if s is None]
    if unknown:
        raise SystemExit(f"error: the age networks need the patient's sex; missing or unknown for {len(unknown)} "
                         f"file(s): {unknown[:5]}. Pass --sex M|F or --sex-csv FILE (columns id,sex).")
    segment_run, keypoints_run, age_runs = predict_runs(args, log)
    try:
        chain = ig_chain.Chain(segment_run, keypoints_run, log=log)
        age = [ig_chain.load_run(r, ig_config.AGE_STAGES, log) for r in age_runs]
    except ig_chain.RunError as e:
        raise SystemExit(f"error: {e}") from None
    age_names = [config.variant if "variant" in config else run.name for run, (config, _) in zip(age_runs, age)]

    pixels, failures = [], []
    for f in files:
        try:
            pixels.append((f, images.read_image(f)))
        except images.ImageError as e:
            failures.append({"file": str(f), "error": str(e)})
            print(f"skipped: {e}", file=sys.stderr)
    rows = []
    if pixels:
        imgs = [px for _, px in pixels]
        males = np.array([sexes[f] for f, _ in pixels], np.float32)
        hand_masks = chain.masks(imgs)
        keypoints = chain.keypoints(imgs, hand_masks)
        columns = {}
        canvases_by_size = {}
        for name, (config, model) in zip(age_names, age):
            key = int(config.data.image_size)
            if key not in canvases_by_size:
                canvases_by_size[key] = chain.register(imgs, config, hand_masks, keypoints)[0]
            inputs = ig_chain.age_inputs(config, canvases_by_size[key], males)
            from reproductions.iglovikov18 import task as ig_task
            estimates = ig_task.age_predict(model, inputs, config)
            columns[f"boneage_months_{name}"] = next(iter(estimates.values()))
        ensemble = np.mean(np.stack(list(columns.values())), axis=0)
        for i, (f, _) in enumerate(pixels):
            row = {"file": str(f), "male": int(males[i]), "boneage_months": round(float(ensemble[i]), 2)}
            row.update({k: round(float(v[i]), 2) for k, v in columns.items()})
            row.update({f"{n}_{c}": round(float(keypoints[i, j, k]), 1) for j, n in enumerate(ig_config.KEYPOINT_NAMES)
                        for k, c in enumerate("xy")})
            rows.append(row)
        if args.canvas_dir:
            import cv2
            out = Path(args.canvas_dir)
            for size, canvases in canvases_by_size.items():
                for (f, _), canvas, mask in zip(pixels, canvases, hand_masks):
                    io.atomic_write_bytes(out / f"{f.stem}_canvas{size}.png", cv2.imencode(".png", canvas)[1].tobytes())
                    io.atomic_write_bytes(out / f"{f.stem}_mask.png", cv2.imencode(".png", mask)[1].tobytes())
    # Every row says which runs answered (directory and commit of each), so the file is traceable on its own.
    which = _run_columns({"segment": segment_run, "keypoints": keypoints_run, **dict(zip(age_names, age_runs))})
    table = pd.DataFrame(rows + failures).assign(**which)
    io.atomic_to_csv(table, Path(args.output_csv))
    print(table.drop(columns=list(which)).to_string(index=False))
    log(f"Wrote {args.output_csv} ({len(rows)} predicted, {len(failures)} skipped); the estimate is the mean of "
        f"{len(age_runs)} age network(s).")
    return 0


def predict_runs(args, log=print) -> tuple[Path, Path, list[Path]]:
    """(segment run, keypoints run, age runs) of `predict`: those given, else those its flags name;
    the log says which, with the data each was trained on and its commit."""
    from common import train as common_train
    base = base_variant(args)
    data_name = common_train.dataset_name(args.data, args.data_dir, log)  # a name only: nothing is built
    segment_run, keypoints_run = chain_runs(args, data_name, base)
    age_data = (common_train.dataset_name(args.age_data, args.data_dir, log) if args.age_data
                else age_data_name(data_name, base))
    age_runs = named_age_runs(args.age_runs, age_data, base, log)
    for role, run in (("segment", segment_run), ("keypoints", keypoints_run), *(("age", r) for r in age_runs)):
        log(f"Predicting with the {role} run {common_train.describe_run(run)}")
    return segment_run, keypoints_run, age_runs


def _run_columns(runs: dict) -> dict:
    """run_dir_<name> and run_commit_<name> of each run of a chain ({name: run directory})."""
    from common import train as common_train
    return {k: v for name, run in runs.items() for k, v in common_train.run_columns(run, f"_{name}").items()}


# --- refine-masks ----------------------------------------------------------------------------

def refine_masks(argv, log=print):
    """The paper's iteration, with agreement in place of review: the U-Net's masks that agree with
    the bootstrap become the next round's targets (a masks.npz for `segment.pseudo_masks`)."""
    from common import data as data_lib
    from common import pipeline
    from reproductions.iglovikov18 import chain as ig_chain
    from reproductions.iglovikov18 import masks
    from reproductions.iglovikov18 import preprocessing as pp
    p = argparse.ArgumentParser(prog="python -m reproductions.iglovikov18 refine-masks")
    p.add_argument("--segment-run", required=True)
    p.add_argument("--data", default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--min-iou", type=float, default=0.8, help="agreement with the bootstrap mask to keep a mask")
    p.add_argument("--out", default=None, help="masks.npz to write (default: <segment run>/pseudo_masks.npz)")
    p.add_argument("--limit", type=int, default=None)
    args = p.parse_args(argv)
    config, model = ig_chain.load_run(args.segment_run, ("segment",), log)
    handle = data_lib.resolve(args.data, data_dir=args.data_dir, log=log)
    if "mask" in handle.builder.info.features:
        raise SystemExit(f"error: {handle.name} has masks of its own; refine-masks is for radiographs without them")
    threshold, largest = float(config.segment.threshold), bool(config.segment.largest_component)
    unrefined = config.copy()
    unrefined.segment.pseudo_masks = ""          # compare with the bootstrap, not with an earlier round
    ids, kept, seen = [], [], 0
    for split in ("train", "validation"):
        if split not in handle.splits:
            continue
        ds = pipeline.make_dataset(handle, split, preprocess=pp.make_segment_preprocess(unrefined, False),
                                   to_model_io=lambda b: b, batch_size=32, training=False, limit=args.limit,
                                   keys=("id", "image"))
        for batch in ds:
            logits = np.asarray(model.predict_on_batch({"image": batch["image"].numpy()})["logits"])[..., 0]
            for i, lg in enumerate(logits):
                seen += 1
                predicted = masks.clean_mask(1.0 / (1.0 + np.exp(-lg)), threshold, largest)
                bootstrap = batch["mask"][i].numpy()[..., 0] > 0.5
                if float(batch["weight"][i]) > 0 and masks.refine_mask(predicted, bootstrap, args.min_iou) is not None:
                    ids.append(batch["id"][i].numpy().decode())
                    kept.append(predicted)
    out = Path(args.out) if args.out else Path(args.segment_run) / "pseudo_masks.npz"
    with io.atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, ids=np.array(ids), masks=np.array(kept, np.uint8).reshape(-1, *((int(config.data.image_size),) * 2)))
    log(f"Kept {len(ids)} of {seen} masks (IoU >= {args.min_iou} with the bootstrap) -> {out}. Next round: "
        f"train --stage segment --init-from {args.segment_run} --set segment.pseudo_masks={out} ...")
    return 0
