"""rsna17_second as a Task for the shared machinery: patches, one model per sex, decision fusion.

What it hands to common/:

* data (its DataSpec, common/data_spec.py): `preprocess` caches the hand crop (uint8 S x S
  after CLAHE); `expand` turns it into its 49 patch rows after the cache (`patches_per_image` of
  them, at random, per epoch when fewer than 49); `example_filter` keeps the radiographs of the
  model's sex; evaluation and prediction take the 49 patches of a radiograph as one stack
  (`test_preprocess`);
* training (`PerSexRuns`, its runner: common/runner.py): `run_train` trains one sub-run per sex
  (`--sex female|male|both`), each with common.train.train in `<run>/<sex>/` (resumable on its
  own), then writes the run's combined record; a finished sub-run is not trained again;
* evaluation (the same runner): `load_trained` loads each sub-run's best weights into a `SexRouter`;
  `calibrate` fits the learned fusion's weights on the validation split (`<run>/<sex>/fusion.json`);
  `predict` returns every fusion, the primary (`eval.primary_fusion`) first.
"""
from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from common import io, provenance
from common.runner import SingleRun
from common.runs import RunDir
from common.task import DataSpec, Task
from reproductions.rsna17_second import config as second_config
from reproductions.rsna17_second import fusion as second_fusion
from reproductions.rsna17_second import model as second_model
from reproductions.rsna17_second import preprocessing as second_pp

CITATION = ("RSNA Pediatric Bone Age Challenge 2017, second place, as reported in Halabi SS, Prevedello LM, "
            "Kalpathy-Cramer J, et al. The RSNA Pediatric Bone Age Machine Learning Challenge. "
            "Radiology 2019;290(2):498-503.")
SEXES = second_config.SEXES
FUSION_FILE = "fusion.json"


# --- model and data ---------------------------------------------------------------------------

def build_model(config):
    """The patch model of `config.model.sex` (a sub-run's config names one sex)."""
    sex = config.model.sex
    if sex not in SEXES:
        raise ValueError(f"build_model makes one sex's patch model: config.model.sex must be one of {SEXES}. "
                         f"Received: sex={sex!r} (a run of both sexes is loaded with load_trained)")
    norm = config.model.target_norm[sex]
    return second_model.build_patch_model(config.data.patch_size, norm["mean"], norm["std"],
                                          bn_momentum=config.model.bn_momentum, name=f"rsna17_second_{sex}",
                                          backbone=config.model.backbone)


def example_filter(config):
    """Keeps the radiographs of the model's sex; None for both."""
    sex = config.model.sex
    if sex == "both":
        return None
    if sex not in SEXES:
        raise ValueError(f"config.model.sex must be 'female', 'male' or 'both'. Received: sex={sex!r}")
    wanted = tf.constant(int(sex == "male"), tf.int64)
    return lambda example: tf.equal(tf.cast(example["male"], tf.int64), wanted)


def expand_sample(config):
    n = config.train.patches_per_image
    total = config.data.patch_grid ** 2
    if not 0 < n <= total:
        raise ValueError(f"train.patches_per_image must be in 1..{total}. Received: {n}")
    return None if n == total else n


def to_model_io(config):
    def io_fn(batch):
        inputs = {"image": tf.cast(batch["image"], tf.float32),
                  "male": tf.cast(batch["male"], tf.float32)[..., tf.newaxis]}
        return inputs, tf.cast(batch["boneage_months"], tf.float32)
    return io_fn


def loss(config):
    import keras
    if config.train.loss != "mae":
        raise ValueError(f"train.loss must be 'mae'. Received: {config.train.loss!r}")
    return keras.losses.MeanAbsoluteError()


def metrics(config):
    import keras
    return [keras.metrics.MeanAbsoluteError(name="mae")]


# --- fusion read-outs ---------------------------------------------------------------------------

def fusion_order(config) -> list[str]:
    fusions, primary = list(config.eval.fusions), config.eval.primary_fusion
    unknown = [f for f in fusions if f not in second_fusion.FUSIONS]
    if unknown or primary not in fusions:
        raise ValueError(f"eval.fusions must be some of {second_fusion.FUSIONS} and include eval.primary_fusion. "
                         f"Received: fusions={fusions}, primary_fusion={primary!r}")
    return [primary] + [f for f in fusions if f != primary]


def fuse_all(patch_months, male, config, fusion_weights) -> dict:
    """{fusion: [B] months} for the fusions in the config, primary first. The learned fusion is
    left out when a sex of the run has no fitted weights (e.g. predict before any evaluate)."""
    male = np.asarray(male).reshape(-1) >= 0.5
    out = {}
    for name in fusion_order(config):
        if name != "learned":
            out[name] = second_fusion.fuse(patch_months, name)
            continue
        sexes_here = {("male" if m else "female") for m in male}
        if not sexes_here <= set(fusion_weights):
            continue
        fused = np.empty(len(male))
        for sex in sexes_here:
            rows = male == (sex == "male")
            fused[rows] = second_fusion.fuse(patch_months[rows], "learned", fusion_weights[sex])
        out[name] = fused
    return out


def predict(model, inputs, config):
    """Every fusion of the 49 patch predictions (primary first); `model` is a SexRouter."""
    patch_months = model.patch_predictions(inputs["image"], inputs["male"])
    weights = model.fusion_weights if set(model.sexes) <= set(model.fusion_weights) else {}
    return fuse_all(patch_months, inputs["male"], config, weights)


# --- runs: one sub-run per sex ------------------------------------------------------------------

def add_flags(command, parser):
    if command == "train":
        parser.add_argument("--sex", default="both", choices=("female", "male", "both"),
                            help="which sex-specific model(s) to train: both = female then male, each in "
                                 "its own sub-run <run>/<sex>/ (each resumable); default both")


def _read_json(path) -> dict:
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else {}


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def combined_history(run_dir, sexes) -> pd.DataFrame:
    """Per-epoch metrics of the sub-runs side by side: female_mae, val_female_mae, male_mae, ..."""
    merged = None
    for sex in sexes:
        path = Path(run_dir) / sex / "metrics.csv"
        if not path.exists() or path.stat().st_size == 0:
            continue
        h = pd.read_csv(path).drop_duplicates("epoch", keep="last")
        h = h.rename(columns={c: (f"val_{sex}_{c[4:]}" if c.startswith("val_") else f"{sex}_{c}")
                              for c in h.columns if c != "epoch"})
        merged = h if merged is None else merged.merge(h, on="epoch", how="outer")
    return pd.DataFrame(columns=["epoch"]) if merged is None else merged.sort_values("epoch")


def _sub_config(config, sex):
    sub = config.copy()
    sub.model.sex = sex
    return sub


def run_train(task, options, log=print):
    """`train --sex female|male|both`: one common.train.train sub-run per sex, then the run's record.

    `options` (common/options.py RunOptions): the run's; each sub-run trains on a copy with its own
    --out and `model.sex`. Its extras["sex"] is the --sex flag (default both).

    Sub-runs live in <run>/female and <run>/male with their own config, record, metrics and
    checkpoints; rerunning the same command resumes the unfinished one and skips a finished
    one. <run>/run.json combines them (what the results table reads) and <run>/metrics.csv
    puts their learning curves side by side.
    """
    import keras

    from common import data as data_lib
    from common import pipeline
    from common import train as common_train
    chosen = options.extra("sex", "both")
    config = common_train.make_config(task, options)
    common_train.check_start(task, config, options)  # each sub-run checks it too; said here before the data
    handle = data_lib.resolve(options.data, data_dir=options.data_dir, log=log)
    run_dir = Path(options.out) if options.out else common_train.default_run_dir(task, handle.name, config)
    sexes = SEXES if chosen == "both" else (chosen,)
    config.model.sex = chosen
    trained_now = False
    for sex in sexes:
        sub_options = dataclasses.replace(options, out=str(run_dir / sex),
                                          overrides=(*options.overrides, f"model.sex={sex}"))
        sub_config = common_train.make_config(task, sub_options)
        done = RunDir(run_dir / sex).record()
        if (done.get("status") in ("trained", "evaluated") and done.get("epochs_done", 0) >= sub_config.train.epochs
                and done.get("config") == json.loads(json.dumps(sub_config.to_dict()))):
            log(f"rsna17_second: the {sex} model in {run_dir / sex} is trained ({done['epochs_done']} epochs); "
                "skipping it (use --out for a new run).")
            continue
        log(f"rsna17_second: training the {sex} model ({sexes.index(sex) + 1}/{len(sexes)}) in {run_dir / sex}")
        common_train.train(task, sub_options, log=log)
        trained_now = True
        keras.backend.clear_session()  # free the first model before the second is built
        gc.collect()

    subs = {sex: RunDir(run_dir / sex).record() for sex in sexes}
    first = subs[sexes[0]]
    record = RunDir(run_dir).record()
    if trained_now:
        record.pop("evaluations", None)  # the weights changed: old evaluations no longer describe them
    keep = ("paper", "citation", "variant", "dataset", "image_size", "epochs", "batch_size", "precision", "seed",
            "weights", "hardware", "versions", "commit", "dirty")
    record.update({k: first[k] for k in keep if k in first})
    statuses = [s.get("status") for s in subs.values()]
    record.update({
        "status": "trained" if all(s in ("trained", "evaluated") for s in statuses) else "partial",
        "sex": chosen, "config": config.to_dict(),
        "epochs_done": min(int(s.get("epochs_done", 0)) for s in subs.values()),
        "wall_time_s": round(sum(float(s.get("wall_time_s", 0)) for s in subs.values()), 1),
        "started": min(s.get("started", "") for s in subs.values()), "ended": max(s.get("ended", "") for s in subs.values()),
        "sub_runs": {sex: {"dir": sex, "status": s.get("status"), "epochs_done": s.get("epochs_done"),
                           "best_epoch": s.get("best_epoch"), "best_val_patch_mae": s.get("best_val_mae"),
                           "wall_time_s": s.get("wall_time_s"),
                           "train_images": pipeline.count_examples(handle, "train", filter=example_filter(
                               _sub_config(config, sex)), limit=options.limit),
                           "validation_images": pipeline.count_examples(handle, "validation", filter=example_filter(
                               _sub_config(config, sex)), limit=options.limit)}
                     for sex, s in subs.items()},
    })
    if first.get("init_from"):  # --init-from: each sex started from the same sex's network of the source run
        source = dict(first["init_from"])
        source["run"] = str(Path(source["run"]).parent) if Path(source["run"]).name in SEXES else source["run"]
        record["init_from"] = source
        for sex, s in subs.items():
            record["sub_runs"][sex]["init_from"] = s.get("init_from")
    io.atomic_write_json(run_dir / "config.json", config.to_dict())
    io.atomic_to_csv(combined_history(run_dir, sexes), run_dir / "metrics.csv")
    RunDir(run_dir).write_record(record)
    log(f"rsna17_second: {' and '.join(sexes)} model(s) trained in {record['wall_time_s'] / 60:.1f} min; run {run_dir}")
    return run_dir, None, handle, config


def _sub_run_dirs(config, run_dir) -> dict:
    """{sex: directory with checkpoints/} of a run (both sexes' sub-runs) or of one sub-run."""
    run_dir = Path(run_dir)
    if (run_dir / "checkpoints").is_dir():
        return {config.model.sex: run_dir} if config.model.sex in SEXES else {}
    wanted = SEXES if config.model.sex == "both" else (config.model.sex,)
    return {s: run_dir / s for s in wanted if (run_dir / s / "checkpoints").is_dir()}


def _fresh_fusion(sub_dir, weights_file, grid) -> np.ndarray | None:
    fitted = _read_json(Path(sub_dir) / FUSION_FILE)
    if (not fitted or fitted.get("weights_sha256") != _sha256(weights_file)
            or len(fitted.get("weights", ())) != grid * grid):
        return None
    return np.asarray(fitted["weights"], np.float64)


def load_trained(task, config, run_dir, model=None, log=print):
    """A SexRouter with the best (else last) weights of each sex's sub-run and its fitted fusion."""
    from common import train as common_train
    dirs = _sub_run_dirs(config, run_dir)
    if not dirs:
        raise SystemExit(f"error: no trained rsna17_second model in {run_dir} (expected {run_dir}/female/checkpoints "
                         f"and/or {run_dir}/male/checkpoints); run `train` first (same flags).")
    models, loaded, fusions, weights_files = {}, [], {}, {}
    for sex, sub_dir in dirs.items():
        models[sex], name = common_train.load_trained(task, _sub_config(config, sex), sub_dir, log=log)
        weights_files[sex] = sub_dir / "checkpoints" / name
        loaded.append(f"{sex}/{name}" if sub_dir != Path(run_dir) else name)
        fitted = _fresh_fusion(sub_dir, weights_files[sex], config.data.patch_grid)
        if fitted is not None:
            fusions[sex] = fitted
    router = second_model.SexRouter(models, patch_batch=config.eval.patch_batch, fusion_weights=fusions)
    router.run_dirs, router.weights_files = dirs, weights_files
    if "learned" in config.eval.fusions and set(fusions) != set(models):
        log(f"Note: no fitted learned fusion for {sorted(set(models) - set(fusions))} yet (`evaluate` fits it on the "
            "validation split); the learned estimate is left out until then.")
    return router, ", ".join(loaded)


def calibrate(task, router, config, handle, run_dir, log=print):
    """Fits each sex's learned-fusion weights on its validation radiographs (once per set of weights)."""
    from common import pipeline
    if "learned" not in config.eval.fusions:
        return
    for sex in router.sexes:
        if sex in router.fusion_weights:
            continue
        if "validation" not in handle.splits:
            log(f"Note: {handle.name} has no validation split: no learned fusion for the {sex} model.")
            continue
        sub_config = _sub_config(config, sex)
        ds = pipeline.make_dataset(handle, "validation", preprocess=test_preprocess(sub_config),
                                   to_model_io=to_model_io(sub_config), batch_size=config.train.batch_size,
                                   training=False, keys=TASK.data.example_keys, filter=example_filter(sub_config))
        patch_months, months = [], []
        for inputs, y in ds:
            patch_months.append(router.patch_predictions(inputs["image"], inputs["male"]))
            months.append(np.asarray(y, np.float64).reshape(-1))
        if not patch_months:
            log(f"Note: no {sex} radiographs in the validation split: no learned fusion for that model.")
            continue
        patch_months, months = np.concatenate(patch_months), np.concatenate(months)
        weights = second_fusion.fit_simplex_weights(patch_months, months)
        val_mae = {name: float(np.abs(second_fusion.fuse(patch_months, name, weights) - months).mean())
                   for name in second_fusion.FUSIONS}
        io.atomic_write_json(router.run_dirs[sex] / FUSION_FILE, {
            "weights": [round(float(w), 6) for w in weights], "grid": config.data.patch_grid,
            "rule": "least squares on the validation split, weights >= 0 summing to 1 (fusion.fit_simplex_weights)",
            "weights_file": router.weights_files[sex].name, "weights_sha256": _sha256(router.weights_files[sex]),
            "fitted_on": {"dataset": handle.name, "split": "validation", "images": int(len(months)),
                          "split_fingerprint": handle.metadata.get("fingerprints", {}).get("validation")},
            "validation_mae_months": val_mae, "when": provenance.now()})
        router.fusion_weights[sex] = weights
        log(f"Fitted the {sex} model's learned fusion on {len(months)} validation radiographs: validation MAE "
            + ", ".join(f"{k} {v:.2f}" for k, v in val_mae.items()) + " months.")


def test_preprocess(config):
    return second_pp.make_example_test_patches(config)


class PerSexRuns(SingleRun):
    """The runner of rsna17_second (common/runner.py): `train --sex`, one sub-run per sex, loaded as
    one SexRouter, whose learned fusion evaluate fits on the validation split."""
    several_models = True  # `train --sex both` trains two models in one command
    add_flags = staticmethod(add_flags)
    train = staticmethod(run_train)
    load_trained = staticmethod(load_trained)
    calibrate = staticmethod(calibrate)


TASK = Task(
    paper="rsna17_second",
    citation=CITATION,
    get_config=second_config.get_config,
    build_model=build_model,
    data=DataSpec(
        preprocess=lambda config, training: second_pp.make_example_preprocess(config),
        to_model_io=to_model_io,
        test_preprocess=test_preprocess,
        example_filter=example_filter,
        expand=lambda config, training: second_pp.make_example_expand(config),
        expand_sample=expand_sample,
    ),
    loss=loss,
    metrics=metrics,
    predict=predict,
    backbone_name=second_model.BACKBONE_NAME,
    weights_hint="keras.applications ResNet50 ImageNet weights without top "
                 "(resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5)",
    needs_sex=True,
    variants=tuple(v for v in second_config.VARIANTS if v),
    runner=PerSexRuns(),
)
