"""What the chain adds to common.train: the stage evaluations and the registration of a dataset.

* `evaluate_segment` / `evaluate_keypoints`: Dice and IoU, or key-point error in pixels, on a
  split (the run record keeps them under "stage_evaluations": they are not months, so the common
  results table leaves them out).
* `register_dataset`: runs a trained segment + key-point chain over every split of a dataset and
  writes the canvases as a folder dataset (images/, labels.csv with the split, DERIVED_FROM.json naming the source dataset),
  which the age stages then train on.

The ensemble is in ensemble.py, the region table in regions.py, the figures in figures.py.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import data as data_lib
from common import io, pipeline, provenance
from common.runs import RunDir
from reproductions.iglovikov18 import masks
from reproductions.iglovikov18 import preprocessing as pp

REGISTERED_MARKER = data_lib.DERIVED_MARKER  # common/data.py: runs on it join the source's experiment


def _save_stage_evaluation(run_dir, split, summary):
    run = RunDir(run_dir)
    record = run.record()
    record.setdefault("stage_evaluations", {})[split] = summary
    run.write_record(record)


def _best_model(task, config, run_dir):
    model = task.build_model(config)
    weights = RunDir(run_dir).best_weights()
    if weights is None:
        raise SystemExit(f"error: no trained weights in {run_dir}/checkpoints; run `train` first (same flags).")
    model.load_weights(weights)
    return model, weights


def _ci(values, seed=0, n_boot=1000):
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return {"value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    rng = np.random.default_rng(seed)
    boots = values[rng.integers(0, values.size, (n_boot, values.size))].mean(axis=1)
    return {"value": float(values.mean()), "ci_low": float(np.percentile(boots, 2.5)),
            "ci_high": float(np.percentile(boots, 97.5))}


# --- stage 1 -------------------------------------------------------------------------------------

def evaluate_segment(task, config, handle, run_dir, split="test", limit=None, log=print):
    """Dice and IoU of the U-Net (thresholded, as predicted) on a split; writes <split>/metrics.json.

    The reference is the dataset's own masks (phantoms) or, for radiographs without masks, the
    bootstrap masks (never a refinement round's pseudo masks: those exist for training images only).
    """
    model, weights = _best_model(task, config, run_dir)
    config = config.copy()
    config.segment.pseudo_masks = ""
    ds = pipeline.make_dataset(handle, split, preprocess=task.data.preprocess(config, False),
                               to_model_io=lambda b: b, batch_size=config.train.batch_size, training=False,
                               limit=limit, keys=task.data.example_keys)
    rows, shown = [], []
    threshold = float(config.segment.threshold)
    for batch in ds:
        logits = np.asarray(model.predict_on_batch({"image": batch["image"].numpy()})["logits"])[..., 0]
        for i, lg in enumerate(logits):
            prob = 1.0 / (1.0 + np.exp(-lg))
            pred = masks.clean_mask(prob, threshold, bool(config.segment.largest_component))
            true = batch["mask"][i].numpy()[..., 0] > 0.5
            rows.append({"id": batch["id"][i].numpy().decode(), "dice": masks.dice(pred, true),
                         "iou": masks.iou(pred, true), "weight": float(batch["weight"][i])})
            if len(shown) < 8:
                shown.append((batch["image"][i].numpy()[..., 0], true, pred))
    table = pd.DataFrame(rows)
    kept = table[table["weight"] > 0]
    summary = {"images": len(table), "scored_images": len(kept), "dice": _ci(kept["dice"]), "iou": _ci(kept["iou"]),
               "weights": weights.name, "dataset": handle.name, "dataset_fingerprint": handle.fingerprint(),
               "split": split, "when": provenance.now(), "mask_source": "dataset masks" if "mask" in
               handle.builder.info.features else "bootstrap masks (masks.bootstrap_mask)"}
    out = Path(run_dir) / split
    io.atomic_to_csv(table, out / "predictions.csv")
    io.atomic_write_json(out / "metrics.json", summary)
    _mask_sheet(shown, out / "masks.png", f"iglovikov18 U-Net on {handle.name} {split}")
    _save_stage_evaluation(run_dir, split, summary)
    log(f"{split}: Dice {summary['dice']['value']:.3f} [{summary['dice']['ci_low']:.3f}, "
        f"{summary['dice']['ci_high']:.3f}], IoU {summary['iou']['value']:.3f} on {len(kept)} images -> {out}")
    return summary


def _mask_sheet(items, path, title):
    from matplotlib.figure import Figure
    if not items:
        return
    fig = Figure(figsize=(1.6 * len(items), 1.9))
    for i, (image, true, pred) in enumerate(items):
        ax = fig.add_subplot(1, len(items), i + 1)
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.contour(true.astype(float), levels=[0.5], colors="#009E73", linewidths=0.8)
        ax.contour((pred > 0).astype(float), levels=[0.5], colors="#D55E00", linewidths=0.8)
        ax.set_axis_off()
    fig.suptitle(f"{title}\n(green: reference mask, orange: U-Net)", fontsize=8)
    io.atomic_savefig(fig, path, dpi=110)


# --- stage 2 -------------------------------------------------------------------------------------

def evaluate_keypoints(task, config, handle, run_dir, split="test", limit=None, log=print):
    """Key-point error in input pixels (and in the original image's pixels) on a split."""
    model, weights = _best_model(task, config, run_dir)
    size = float(config.data.image_size)
    ds = pipeline.make_dataset(handle, split, preprocess=task.data.preprocess(config, False),
                               to_model_io=lambda b: b, batch_size=config.train.batch_size, training=False,
                               limit=limit, keys=task.data.example_keys)
    rows = []
    for batch in ds:
        pred = np.asarray(model.predict_on_batch({"image": batch["image"].numpy()})["keypoints"])
        true = batch["keypoints"].numpy()
        err = np.linalg.norm(pred - true, axis=-1) * size          # [B, 3] input pixels
        for i in range(len(err)):
            row = {"id": batch["id"][i].numpy().decode(), "weight": float(batch["weight"][i])}
            row.update({f"error_px_{n}": float(e) for n, e in zip(config.keypoints.names, err[i])})
            rows.append(row)
    table = pd.DataFrame(rows)
    kept = table[table["weight"] > 0]
    cols = [f"error_px_{n}" for n in config.keypoints.names]
    summary = {"images": len(table), "scored_images": len(kept), "input_size_px": int(size),
               "error_px": _ci(kept[cols].to_numpy().mean(axis=1)),
               "error_px_by_keypoint": {n: _ci(kept[c]) for n, c in zip(config.keypoints.names, cols)},
               "weights": weights.name, "dataset": handle.name, "dataset_fingerprint": handle.fingerprint(),
               "split": split, "when": provenance.now(), "keypoint_source": "dataset key points" if handle.has_keypoints
               else "read off bootstrap masks (masks.keypoints_from_mask)"}
    out = Path(run_dir) / split
    io.atomic_to_csv(table, out / "predictions.csv")
    io.atomic_write_json(out / "metrics.json", summary)
    _save_stage_evaluation(run_dir, split, summary)
    by = ", ".join(f"{n} {v['value']:.2f}" for n, v in summary["error_px_by_keypoint"].items())
    log(f"{split}: key-point error {summary['error_px']['value']:.2f} px at {int(size)} px input ({by}) "
        f"on {len(kept)} images -> {out}")
    return summary


# --- registration of a whole dataset ---------------------------------------------------------

def _chunks(iterator, n):
    chunk = []
    for item in iterator:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def register_dataset(chain, handle, age_config, out_dir, log=print, limit=None):
    """Writes every split of `handle` as registered canvases: out_dir/images/<id>.png, labels.csv, marker."""
    import cv2
    stored = age_config.copy()
    stored.data.image_size = int(age_config.data.image_size) * int(age_config.registration.store_scale)
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rows, start = [], time.time()
    for split in handle.splits:
        ds = pipeline.read_split(handle, split)
        if limit:
            ds = ds.take(limit)
        for chunk in _chunks(ds.map(pipeline.decode).as_numpy_iterator(), 64):
            canvases, _, _ = chain.register([e["image"][..., 0] for e in chunk], stored)
            for e, canvas in zip(chunk, canvases):
                example_id = e["id"].decode()
                ok, png = cv2.imencode(".png", canvas)
                io.atomic_write_bytes(out_dir / "images" / f"{example_id}.png", png.tobytes())
                rows.append({"id": example_id, "boneage": float(e["boneage_months"]), "male": int(e["male"]),
                             "split": split})
        log(f"registered {split}: {sum(r['split'] == split for r in rows)} images")
    io.atomic_to_csv(pd.DataFrame(rows), out_dir / "labels.csv")
    io.atomic_write_json(out_dir / REGISTERED_MARKER, {
        "source_dataset": handle.name, "source_fingerprint": handle.fingerprint(), "segment_run": chain.segment_run,
        "keypoints_run": chain.keypoints_run, "canvas_size": list(age_config.registration.canvas),
        "image_size": int(age_config.data.image_size), "stored_canvas_hw": list(pp.canvas_hw(stored)),
        "images": len(rows), "when": provenance.now(),
        "wall_time_s": round(time.time() - start, 1)})
    return out_dir


def is_registered(handle) -> bool:
    """A folder dataset written by `register_dataset` (its labels.csv has the marker beside it)."""
    labels = handle.metadata.get("source", {}).get("labels_csv")
    return bool(labels) and (Path(labels).parent / REGISTERED_MARKER).exists()
