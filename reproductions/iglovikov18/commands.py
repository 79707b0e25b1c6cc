"""`register` (a dataset through the trained chain) and `predict` (the whole chain on radiographs)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from reproductions.iglovikov18 import config as ig_config


def _results_dir() -> Path:
    from common import results
    return Path(results.RESULTS_DIR) / "iglovikov18"


def latest_runs(stages, results_dir=None) -> list[Path]:
    """Trained iglovikov18 run directories of the given stages, most recent first."""
    root = Path(results_dir or _results_dir())
    found = []
    for weights in root.glob("*/checkpoints/best.weights.h5"):
        run = weights.parent.parent
        try:
            stage = json.loads((run / "config.json").read_text()).get("stage")
        except (OSError, ValueError):
            continue
        if stage in stages:
            found.append((weights.stat().st_mtime, run))
    return [run for _, run in sorted(found, reverse=True)]


def _pick(given, stage, log):
    if given:
        return Path(given)
    runs = latest_runs((stage,))
    if not runs:
        raise SystemExit(f"error: no trained {stage} run found in {_results_dir()}; pass --{stage}-run DIR or train "
                         f"it first (python -m reproductions.iglovikov18 train --stage {stage} ...)")
    log(f"Using the most recent {stage} run, {runs[0]} (pass --{stage}-run to choose).")
    return runs[0]


def default_age_runs(log=print) -> list[Path]:
    """The most recent trained run of each (head, region)."""
    chosen = {}
    for run in latest_runs(ig_config.AGE_STAGES):
        config = json.loads((run / "config.json").read_text())
        chosen.setdefault((config["stage"], config["model"]["region"]), run)
    if not chosen:
        raise SystemExit(f"error: no trained age run (regress / classify) in {_results_dir()}; pass --age-runs or "
                         "train one first.")
    runs = list(chosen.values())
    log(f"Using the most recent age runs: {[str(r) for r in runs]} (pass --age-runs to choose).")
    return runs


# --- register --------------------------------------------------------------------------------

def register(argv, log=print):
    from common import data as data_lib
    from reproductions.iglovikov18 import chain as ig_chain
    from reproductions.iglovikov18 import stages
    p = argparse.ArgumentParser(prog="python -m reproductions.iglovikov18 register",
                                description="Writes a dataset's registered canvases as a folder dataset.")
    p.add_argument("--data", default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--segment-run", default=None)
    p.add_argument("--keypoints-run", default=None)
    p.add_argument("--small", action="store_true")
    p.add_argument("--variant", default="", help="base variant whose canvas size is used: '', small, thumbs")
    p.add_argument("--image-size", type=int, default=None, help="canvas height in px (default: the variant's)")
    p.add_argument("--out", default=None, help="folder to write (default: <data dir>/iglovikov18-registered/...)")
    p.add_argument("--limit", type=int, default=None, help="only the first N examples of each split")
    args = p.parse_args(argv)
    base = "small" if args.small else args.variant
    age_config = ig_config.get_config(ig_config.variant_name(base, "regress", "hand"))
    if args.image_size:
        age_config.data.image_size = args.image_size
    handle = data_lib.resolve(args.data, data_dir=args.data_dir, log=log)
    chain = ig_chain.Chain(_pick(args.segment_run, "segment", log), _pick(args.keypoints_run, "keypoints", log), log=log)
    name = f"{handle.name.split('/')[-1]}-registered-{base or 'paper'}-{age_config.data.image_size}px"
    out = Path(args.out) if args.out else data_lib.default_data_dir() if not args.data_dir else Path(args.data_dir)
    if not args.out:
        out = out / "iglovikov18-registered" / name
    stages.register_dataset(chain, handle, age_config, out, log=log, limit=args.limit)
    registered = data_lib.resolve(f"folder:{out}", data_dir=args.data_dir, log=log)
    log(f"Registered {registered.describe()} into {out}. Train the age stages with --data {registered.name} "
        f"(or --data folder:{out}).")
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
    p.add_argument("--segment-run", default=None)
    p.add_argument("--keypoints-run", default=None)
    p.add_argument("--age-runs", nargs="+", default=None, help="age run directories; their mean is the estimate")
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
    sexes = common_train.read_sex(args, files)
    unknown = [str(f) for f, s in sexes.items() if s is None]
    if unknown:
        raise SystemExit(f"error: the age networks need the patient's sex; missing or unknown for {len(unknown)} "
                         f"file(s): {unknown[:5]}. Pass --sex M|F or --sex-csv FILE (columns id,sex).")
    try:
        chain = ig_chain.Chain(_pick(args.segment_run, "segment", log), _pick(args.keypoints_run, "keypoints", log),
                               log=log)
        age_runs = [Path(r) for r in args.age_runs] if args.age_runs else default_age_runs(log)
        age = [ig_chain.load_run(r, ig_config.AGE_STAGES, log) for r in age_runs]
    except ig_chain.RunError as e:
        raise SystemExit(f"error: {e}") from None

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
        for run, (config, model) in zip(age_runs, age):
            key = int(config.data.image_size)
            if key not in canvases_by_size:
                canvases_by_size[key] = chain.register(imgs, config, hand_masks, keypoints)[0]
            inputs = ig_chain.age_inputs(config, canvases_by_size[key], males)
            from reproductions.iglovikov18 import task as ig_task
            estimates = ig_task.age_predict(model, inputs, config)
            columns[f"boneage_months_{config.variant if 'variant' in config else run.name}"] = next(iter(estimates.values()))
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
    table = pd.DataFrame(rows + failures)
    io.atomic_to_csv(table, Path(args.output_csv))
    print(table.to_string(index=False))
    log(f"Wrote {args.output_csv} ({len(rows)} predicted, {len(failures)} skipped); the estimate is the mean of "
        f"{len(age_runs)} age network(s).")
    return 0


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
