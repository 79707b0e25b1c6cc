"""attention_mtl as a Task for the shared machinery.

The data path through common.pipeline.make_dataset (as lite0_regressor, plus the hand mask):

    decode -> letterbox to s x s (uint8, cached; the mask with it when the mask head or the outside-mask
      penalty is on; the key points drawn as three Gaussian maps when the key-point head is on)
      -> shuffle -> batch -> [training: rotation, shift, zoom of image, mask and maps together]
      -> [0, 1], grey to 3 channels -> {"image"[, "male"]},
         {"months"[, "sex"][, "mask"][, "heatmaps"][, "attention": the mask again, for the penalty]}

Read-outs: `predict` gives the location (the estimate), and per image the scale and the
conformal interval bounds at 80 / 90 / 95 % (Task.extra_columns). `calibrate` fits the conformal
quantiles on the validation split once per set of weights and dataset, into <run>/conformal.json
(atomic write); `load_trained` reads them back, so `predict` has intervals after one `evaluate`
(train runs it). `extra_metrics` writes coverage, width and Spearman into the evaluation, and, for
attention pooling, the attention sheet and the attention-per-region table (explain.py).

How evaluate's attention read-out gets its model and data: the shared `evaluate` calls
`calibrate(task, model, config, handle, run_dir)` before it predicts and `extra_metrics(config,
run_dir, split, predictions, model=, handle=, out_dir=, log=)` after, handing it the model it
predicted with, the dataset and the folder of this evaluation (Task.extra_metrics). Called
without a model (another caller), `extra_metrics` writes the uncertainty section alone.
"""
import hashlib
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from common import io, provenance
from common import preprocessing as common_pp
from common import train as common_train
from common.datasets.base import DataError
from common.errors import UsageError
from common.runner import SingleRun
from common.runs import RunDir
from common.task import DataSpec, Task
from reproductions.attention_mtl import chain_regions, config as attn_config
from reproductions.attention_mtl import conformal, distribution, explain, heads, interval_plot
from reproductions.attention_mtl import model as attn_model

CITATION = ("boneage-repro's own method (not a paper): EfficientNet-Lite0 (Tan & Le, ICML 2019) with attention "
            "pooling conditioned on sex, a Laplace age head trained with the CRPS, split-conformal intervals "
            "(Lei et al., JASA 2018) and auxiliary sex / hand-mask heads")
CONFORMAL_FILE = "conformal.json"


# --- model -------------------------------------------------------------------------------------------

def heads_on(config) -> dict:
    """{"sex", "mask", "keypoints", "outside_mask": bool}: an auxiliary head (or the penalty) is on when its
    loss weight is above 0."""
    aux = config.model.aux
    return {"sex": aux.sex_weight > 0, "mask": aux.mask_weight > 0, "keypoints": aux.keypoint_weight > 0,
            "outside_mask": aux.outside_mask_weight > 0}


def needs(config) -> dict:
    """{"mask": bool, "keypoints": bool}: the annotations training reads (the mask for the mask head and the
    outside-mask penalty, the key points for the heatmap head)."""
    on = heads_on(config)
    return {"mask": on["mask"] or on["outside_mask"], "keypoints": on["keypoints"]}


def build_model(config):
    m, on = config.model, heads_on(config)
    if on["outside_mask"] and m.pooling != "attention":
        raise UsageError(f"model.aux.outside_mask_weight > 0 penalises the attention pooling's weights, and this "
                         f"config pools by {m.pooling!r}: set model.pooling=attention or model.aux.outside_mask_weight=0")
    return attn_model.build_attention_mtl(
        config.data.image_size, backbone=m.backbone, pooling=m.pooling, sex_input=m.sex_input, d_model=m.d_model,
        heads=m.attention_heads, gru_units=m.gru_units, sex_units=m.sex_units, dense_units=m.dense_units,
        dropout=m.dropout, target_mean_months=m.target_mean_months, target_std_months=m.target_std_months,
        min_scale_months=m.min_scale_months, distribution=m.distribution, sex_head=on["sex"], mask_head=on["mask"],
        mask_size=m.aux.mask_size, mask_channels=m.aux.mask_channels, keypoint_head=on["keypoints"],
        keypoint_channels=m.aux.keypoint_channels, attention_output=on["outside_mask"])


# --- data --------------------------------------------------------------------------------------------

def keypoint_sigma_px(config) -> float:
    """The key-point Gaussians' s.d. in input pixels: model.aux.keypoint_sigma cells of the mask_size grid."""
    return float(config.model.aux.keypoint_sigma) * config.data.image_size / config.model.aux.mask_size


def from_chain(config) -> bool:
    """Whether a dataset without masks or key points gets the iglovikov18 chain's (model.aux.annotations)."""
    return config.model.aux.get("annotations", "dataset") == "iglovikov18_chain"


def chain_annotations(image):
    """(mask uint8 [H, W, 1] 0/255, key points float32 [3, 2] (x, y) / (W, H), as the phantoms store theirs) of
    one radiograph [H, W, 1] uint8 tensor from the iglovikov18 chain's first stages
    (chain_regions.hand_geometry). An image the chain finds no hand in gets an empty mask (left out of the
    mask loss and the outside-mask penalty: a radiograph always holds a hand, so an empty mask means none)
    and its key points far off the image (an empty heatmap, left out of the key-point loss)."""
    config = chain_regions.iglovikov18_config()  # once, not per image

    def fn(x):
        hand, keypoints = chain_regions.hand_geometry(x[..., 0], config)
        h, w = hand.shape
        keypoints = np.full((3, 2), -10.0) if keypoints is None else keypoints / np.array([w, h], np.float64)
        return (hand.astype(np.uint8) * 255)[..., None], keypoints.astype(np.float32)
    mask, keypoints = tf.numpy_function(fn, [image], (tf.uint8, tf.float32), stateful=False)
    mask.set_shape(image.shape)
    keypoints.set_shape([3, 2])
    return mask, keypoints


def preprocess(config, training):
    """Per example, deterministic: letterboxed uint8 image [s, s, 1] (and mask [s, s, 1] when the mask head or
    the outside-mask penalty is on; and "heatmaps", uint8 [s, s, 3], the key points as Gaussians
    (heads.keypoint_heatmaps), when the key-point head is on).

    Training and validation examples need the annotations the heads read: the dataset's own, or with
    model.aux.annotations = "iglovikov18_chain" the chain's for a dataset without them (`chain_annotations`,
    on the radiograph's own pixels before the letterbox); otherwise `run_train` refuses the dataset before
    anything is built (`check_annotations`)."""
    size, need = config.data.image_size, needs(config)
    sigma = keypoint_sigma_px(config)
    chain = from_chain(config)

    def fn(example):
        if chain and ((need["mask"] and "mask" not in example) or (need["keypoints"] and "keypoints" not in example)):
            mask, keypoints = chain_annotations(example["image"])
            example = {**example, **({"mask": mask} if "mask" not in example else {}),
                       **({"keypoints": keypoints} if "keypoints" not in example else {})}
        missing = _missing(config, example)  # run_train said so already; here for other callers
        if missing:
            raise DataError(missing[0])
        drop = (() if need["keypoints"] else ("keypoints",)) + (() if need["mask"] else ("mask",))
        out = common_pp.letterbox({k: v for k, v in example.items() if k not in drop}, size)
        if need["keypoints"]:
            out["heatmaps"] = heads.keypoint_heatmaps(out.pop("keypoints"), size, sigma)
        return out
    return fn


NO_MASKS = ("model.aux.mask_weight > 0 (the mask head) or model.aux.outside_mask_weight > 0 (the outside-mask "
            "penalty) needs hand masks, and this dataset has none (only the phantoms carry them): pass "
            "--set model.aux.annotations=iglovikov18_chain to take the iglovikov18 chain's, or --set "
            "model.aux.mask_weight=0 --set model.aux.outside_mask_weight=0, or train on phantoms.")
NO_KEYPOINTS = ("the key-point head is on (model.aux.keypoint_weight > 0) but this dataset has no key points (only "
                "the phantoms carry them): pass --set model.aux.annotations=iglovikov18_chain to take the "
                "iglovikov18 chain's, or --set model.aux.keypoint_weight=0, or train on phantoms.")


def _missing(config, features) -> list:
    """The refusals (NO_MASKS, NO_KEYPOINTS) for the annotations the heads need and `features` lacks (none when
    the iglovikov18 chain makes them: model.aux.annotations)."""
    if from_chain(config):
        return []
    need = needs(config)
    return ([NO_MASKS] if need["mask"] and "mask" not in features else []) + (
        [NO_KEYPOINTS] if need["keypoints"] and "keypoints" not in features else [])


def check_annotations(config, handle):
    """Refuses (DataError, with the fix) a dataset without the hand masks or key points the config's heads need."""
    missing = _missing(config, handle.builder.info.features)
    if missing:
        raise DataError(f"{handle.name}: " + " ".join(missing))


def run_train(task, options, log=print):
    """common.train.train, after `check_annotations` on the dataset the options name (opened, or built as train
    would)."""
    from common import data as data_lib
    config = common_train.make_config(task, options)
    if any(needs(config).values()):
        check_annotations(config, data_lib.resolve(options.data, data_dir=options.data_dir, log=log))
    return common_train.train(task, options, log=log)


def test_preprocess(config):
    """evaluate / predict: the image alone (no mask needed: only the months are read)."""
    size = config.data.image_size

    def fn(example):
        return common_pp.letterbox({k: v for k, v in example.items() if k not in ("keypoints", "mask")}, size)
    return fn


def batch_augment(config):
    """Rotation, shift and zoom of the batch; the mask and the key-point maps, when there are any, move with
    their image (they go through the same Keras layers as more channels of one tensor)."""
    affine = common_pp.affine_batch_augment(config.train.augmentation, config.seed, name="attn_augmentation")

    def fn(batch):
        extra = [k for k in ("mask", "heatmaps") if k in batch]
        if not extra:
            return affine(batch)
        stacked = tf.concat([tf.cast(batch[k], tf.float32) for k in ("image", *extra)], axis=-1)
        moved = affine({**batch, "image": stacked})["image"]
        out, start = dict(batch), 0
        for key in ("image", *extra):
            channels = batch[key].shape[-1]
            out[key], start = moved[..., start:start + channels], start + channels
        return out
    return fn


def to_model_io(config):
    """({"image": [B, s, s, 3] in [0, 1][, "male"]}, {"months": [B, 1][, "sex": [B, 1]][, "mask": [B, m, m, 1] in
    [0, 1]][, "heatmaps": [B, m, m, 3] in [0, 1]][, "attention": the mask [B, m, m, 1] again, the penalty's target]})."""
    on, size = heads_on(config), config.model.aux.mask_size

    def fn(batch):
        inputs = {"image": tf.repeat(tf.cast(batch["image"], tf.float32) / 255.0, 3, axis=-1)}
        male = tf.cast(batch["male"], tf.float32)[:, None]
        if config.model.sex_input:
            inputs["male"] = male
        targets = {"months": tf.cast(batch["boneage_months"], tf.float32)[:, None]}
        if on["sex"]:
            targets["sex"] = male
        if "mask" in batch:  # evaluate and predict read no mask (test_preprocess)
            mask = tf.image.resize(tf.cast(batch["mask"], tf.float32) / 255.0, (size, size), method="area")
            if on["mask"]:
                targets["mask"] = mask
            if on["outside_mask"]:
                targets["attention"] = mask
        if on["keypoints"] and "heatmaps" in batch:
            targets["heatmaps"] = tf.image.resize(tf.cast(batch["heatmaps"], tf.float32) / 255.0, (size, size),
                                                  method="area")
        return inputs, targets
    return fn


# --- training ----------------------------------------------------------------------------------------

def _weighted(fn, weight, name):
    def loss(y_true, y_pred):
        return weight * fn(y_true, y_pred)
    loss.__name__ = name
    return loss


def _mask_bce(mask, logits):
    """Per-example mean binary cross-entropy of the mask logits against the (area-resized) mask."""
    per_pixel = ops.binary_crossentropy(ops.cast(mask, "float32"), ops.cast(logits, "float32"), from_logits=True)
    per_example = ops.mean(ops.reshape(per_pixel, (ops.shape(per_pixel)[0], -1)), axis=-1)
    return per_example * heads.has_mask(mask)  # an empty mask is no mask (the chain found no hand): no loss


def _sex_bce(male, probability):
    return ops.reshape(ops.binary_crossentropy(ops.cast(male, "float32"), ops.cast(probability, "float32")), (-1,))


def loss(config):
    if config.train.loss not in distribution.SCORES:
        raise ValueError(f"train.loss must be one of {distribution.SCORES}. Received: {config.train.loss!r}")
    on, aux = heads_on(config), config.model.aux
    losses = {"months": distribution.age_loss(config.model.distribution, config.train.loss)}
    if on["sex"]:
        losses["sex"] = _weighted(_sex_bce, float(aux.sex_weight), "sex_bce")
    if on["mask"]:
        losses["mask"] = _weighted(_mask_bce, float(aux.mask_weight), "mask_bce")
    if on["keypoints"]:
        losses["heatmaps"] = _weighted(heads.keypoint_loss, float(aux.keypoint_weight), "keypoint_softmax_ce")
    if on["outside_mask"]:
        losses["attention"] = _weighted(heads.outside_mask_mass, float(aux.outside_mask_weight), "outside_mask")
    return losses


def metrics(config):
    on = heads_on(config)
    out = {"months": [keras.metrics.MeanMetricWrapper(distribution.absolute_error, name="mae")]}
    if on["sex"]:
        out["sex"] = [keras.metrics.BinaryAccuracy(name="accuracy")]
    if on["outside_mask"]:  # the penalty's share itself, unweighted: attention_outside_mass in metrics.csv
        out["attention"] = [keras.metrics.MeanMetricWrapper(heads.outside_mask_mass, name="outside_mass")]
    return out


# --- read-out and calibration ------------------------------------------------------------------------

def _location_scale(model, inputs, config):
    feed = {"image": np.asarray(inputs["image"])}
    if config.model.sex_input:
        feed["male"] = np.asarray(inputs["male"], np.float32)
    months = np.asarray(model.predict_on_batch(feed)["months"], np.float64)
    return months[:, 0], months[:, 1]


def predict(model, inputs, config):
    """{"location": months, "scale_months": ..., "lower_80": ..., "upper_80": ..., ...}: the estimate, then the
    per-image columns (NaN bounds until the run is calibrated)."""
    loc, scale = _location_scale(model, inputs, config)
    quantiles = (getattr(model, "calibration", None) or {}).get("quantiles") or {
        conformal.level_name(lv): float("nan") for lv in conformal.LEVELS}
    return {config.eval.primary_estimate: loc, **conformal.intervals(loc, scale, quantiles)}


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_calibration(run_dir, weights_file, dataset_fingerprint=None) -> dict | None:
    """The saved calibration when it was fitted for these weights (and this dataset, when given)."""
    path = Path(run_dir) / CONFORMAL_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except ValueError:
        return None
    if saved.get("weights_sha256") != _sha256(weights_file):
        return None
    if dataset_fingerprint is not None and saved.get("fitted_on", {}).get("dataset_fingerprint") != dataset_fingerprint:
        return None
    return saved


def load_trained(task, config, run_dir, model=None, log=print):
    """The best (else last) weights, with the conformal quantiles fitted for them, when there are any."""
    model, name = common_train.load_trained(task, config, run_dir, model=model, log=log)
    model.weights_file = Path(run_dir) / "checkpoints" / name
    model.calibration = _read_calibration(run_dir, model.weights_file)
    if model.calibration is None:
        log(f"Note: no conformal calibration for {name} in {run_dir} yet (`evaluate` fits it on the validation "
            "split); until then the interval columns are empty.")
    return model, name


def calibrate(task, model, config, handle, run_dir, log=print):
    """Fits the conformal quantiles on the validation split (once per weights file and dataset)."""
    from common import pipeline
    split = config.eval.calibration_split
    fingerprint = handle.fingerprint()
    fresh = _read_calibration(run_dir, model.weights_file, fingerprint)
    if fresh is not None:
        model.calibration = fresh
        return
    if split not in handle.splits:
        # An external test set without a validation split (the 16 official challenge images): the intervals
        # keep the quantiles fitted for these weights on the run's own validation split, and say so.
        own = _read_calibration(run_dir, model.weights_file)
        if own is None:
            log(f"Note: {handle.name} has no {split!r} split and {run_dir} has no calibration for these weights yet "
                f"(evaluate the run on its own data first): no conformal intervals.")
            return
        model.calibration = own
        fitted = own.get("fitted_on", {})
        log(f"Note: {handle.name} has no {split!r} split: intervals use the quantiles fitted on the "
            f"{fitted.get('images', '?')} {fitted.get('split', '?')} images of {fitted.get('dataset', '?')}.")
        return
    ds = pipeline.make_dataset(handle, split, preprocess=test_preprocess(config), to_model_io=to_model_io(config),
                               batch_size=config.train.batch_size, training=False, keys=task.data.example_keys)
    locs, scales, ys = [], [], []
    for inputs, targets in ds.as_numpy_iterator():
        loc, scale = _location_scale(model, inputs, config)
        locs.append(loc), scales.append(scale), ys.append(np.asarray(targets["months"], np.float64).reshape(-1))
    y, loc, scale = np.concatenate(ys), np.concatenate(locs), np.concatenate(scales)
    quantiles = conformal.fit(y, loc, scale)
    saved = {
        "quantiles": quantiles, "levels": [conformal.level_name(lv) for lv in conformal.LEVELS],
        "rule": "q = ceil((n + 1) level)-th smallest |y - location| / scale on the calibration split; "
                "interval = location +/- q scale (reproductions/attention_mtl/conformal.py)",
        "weights_file": model.weights_file.name, "weights_sha256": _sha256(model.weights_file),
        "fitted_on": {"dataset": handle.name, "dataset_fingerprint": fingerprint, "split": split,
                      "images": int(len(y)), "split_fingerprint": handle.fingerprint(split)},
        "calibration_mae_months": float(np.mean(np.abs(y - loc))), "when": provenance.now()}
    io.atomic_write_json(Path(run_dir) / CONFORMAL_FILE, _finite(saved))
    model.calibration = saved
    log(f"Conformal calibration on {len(y)} {split} images of {handle.name}: q = "
        + ", ".join(f"{k}% {v:.2f}" for k, v in quantiles.items()) + f" scales -> {Path(run_dir) / CONFORMAL_FILE}")


def _finite(obj):
    """JSON-safe: an infinite quantile (too few calibration images for the level) is written as null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def extra_metrics(config, run_dir, split, predictions, model=None, handle=None, out_dir=None, log=print):
    """{"uncertainty": (coverage, width and Spearman, their markdown)[, "attention": (shares by age band, the
    table)]} for the evaluation; with attention pooling, writes the attention sheet and table beside it.

    `model`, `handle`, `out_dir`: what common.train.evaluate predicted with, on, and writes this evaluation
    into; the attention read-out needs all three (another caller without them gets the uncertainty alone)."""
    result = conformal.report(predictions)
    weights = RunDir(run_dir).best_weights()  # the file evaluate loaded (best, else last)
    saved = _read_calibration(run_dir, weights) if weights is not None else None
    fitted = (saved or {}).get("fitted_on", {})
    result["calibration"] = fitted
    result["in_sample"] = bool(fitted) and fitted.get("split") == split
    about = dict(fitted, in_sample=result["in_sample"]) if fitted else None
    sections = {"uncertainty": (result, conformal.markdown(result, about))}
    if out_dir is not None:
        drawn = interval_plot.plot_intervals(
            predictions, Path(out_dir) / interval_plot.FILE_NAME,
            title=f"attention_mtl ({getattr(config, 'variant', '') or 'paper'}) on {handle.name if handle else split} {split}: "
                  "conformal intervals")
        if drawn is not None:
            log(f"Intervals: {drawn['images']} images -> {drawn['path']}")
    if model is not None and handle is not None and out_dir is not None and config.model.pooling == "attention":
        attention = explain.evaluate_attention(
            model, config, handle, split, predictions, out_dir, to_model_io=to_model_io,
            title=f"attention_mtl ({getattr(config, 'variant', '') or 'paper'}) on {handle.name} {split}", log=log)
        if attention is not None:
            sections["attention"] = attention
    return sections



def explain_predictions(model, config, records, table, out_dir, log=print):
    """`predict --explain`'s overlays: one PNG per radiograph (explain.write_explanations) into out_dir;
    called by CheckedCalibratedRun.after_predict after predict has written its CSV."""
    written = explain.write_explanations(model, config, records, out_dir, to_model_io=to_model_io, table=table)
    log(f"Wrote {len(written)} attention overlays to {Path(out_dir)}")
    return written


class CheckedCalibratedRun(SingleRun):
    """The runner of attention_mtl (common/runner.py): a single run whose training checks the masks and
    key points first (`run_train`) and whose evaluation fits the conformal quantiles (`calibrate`)."""
    train = staticmethod(run_train)
    load_trained = staticmethod(load_trained)
    calibrate = staticmethod(calibrate)

    def add_flags(self, command: str, parser) -> None:
        if command == "predict":
            parser.add_argument("--explain", nargs="?", const="", default=None, metavar="DIR",
                                help="also write one attention overlay per radiograph, <stem>_attention.png, into "
                                     "DIR (default: the folder of the predictions CSV); attention pooling only")

    def after_predict(self, task, model, config, records, table, out_csv, options, log=print) -> None:
        where = options.extra("explain")
        if where is None:
            return
        if config.model.pooling != "attention":
            raise UsageError(f"--explain draws the attention pooling's weights, and this run pools by "
                             f"{config.model.pooling!r}: use a run trained with model.pooling='attention'")
        explain_predictions(model, config, records, table, Path(where) if where else Path(out_csv).parent, log=log)


TASK = Task(
    paper="attention_mtl",
    citation=CITATION,
    get_config=attn_config.get_config,
    build_model=build_model,
    data=DataSpec(
        preprocess=preprocess,
        to_model_io=to_model_io,
        batch_augment=batch_augment,
        test_preprocess=test_preprocess,
        example_keys=("id", "image", "boneage_months", "male", "mask", "keypoints"),
    ),
    loss=loss,
    metrics=metrics,
    predict=predict,
    backbone_name=attn_model.BACKBONE_NAME,
    weights_hint=("the converted EfficientNet-Lite0 ImageNet file (python -m common.weights convert efficientnet-lite0 "
                  "writes ~/.boneage-repro/weights/efficientnet_lite0_imagenet.h5), or the keras.applications notop "
                  "file of the network model.backbone names"),
    needs_sex=lambda config: bool(config.model.sex_input),
    variants=tuple(v for v in attn_config.VARIANTS if v),
    runner=CheckedCalibratedRun(),
    extra_columns=conformal.interval_columns(),
    extra_metrics=extra_metrics,
)
