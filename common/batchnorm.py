"""Batch-norm statistics recomputed from the current weights before each validation.

Why: a batch-norm layer normalises a training batch by that batch's own mean and variance, but an
inference batch by moving averages of them (momentum 0.99 in Keras: a memory of ~100 steps). A
network trained from random weights changes fast, so those averages describe weights of
hundreds of steps ago, and the validation error can swing by an order of magnitude from one
epoch to the next while the training error falls steadily (rsna17_winner's thumbnail run:
29 to 487 months). Recomputing the statistics with the current weights over a number of
training batches ("precise BN", Wu & Johnson, arXiv:2105.07576) removes the lag without
changing the training itself: the gradients never see these averages.

    recompute_statistics(model, batches)     # cumulative averages over the batches given
    RecomputeBeforeValidation(dataset, n)    # a callback: at every validation inside fit
    statistics_source(task, config, ...)     # which batches: augmented (default) or unaugmented training images
    diagnose(task, run_dir, ...)             # one run's validation MAE three ways (the diagnosis)

    python -m reproductions bn-check RUN_DIR [--batches 50] [--split validation]

Every batch-norm layer's momentum is set to (k-1)/k for the k-th batch, so that after n batches
its moving mean and variance are the plain averages of the n batch statistics, then put back.
"""
from __future__ import annotations

import keras


def batchnorm_layers(model) -> list:
    return [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


def _all_layers(model):
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _all_layers(layer)


def recompute_statistics(model, batches) -> int:
    """Replaces every batch-norm layer's moving mean and variance by the average of its batch
    statistics over `batches` (model inputs, or (inputs, targets[, ...]) tuples), computed with the
    current weights; returns the number of batches used (0: nothing changed)."""
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    n = 0
    try:
        for batch in batches:
            inputs = batch[0] if isinstance(batch, tuple) else batch
            n += 1
            for layer in layers:
                layer.momentum = (n - 1) / n  # 0 for the first batch: the old averages are dropped
            model(inputs, training=True)  # forward only: no gradient, no optimizer step
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return n


class RecomputeBeforeValidation(keras.callbacks.Callback):
    """Recomputes the batch-norm statistics from `n_batches` batches of `dataset` (the training
    split, without augmentation changes: whatever the caller passes) at the start of every
    validation inside `fit`, so that the validation error, the best checkpoint and the backup
    all see statistics of the weights being validated."""

    def __init__(self, dataset, n_batches: int, log=print, source: str = "augmented"):
        super().__init__()
        self.dataset, self.n_batches, self.log, self.source = dataset, int(n_batches), log, source
        self._logged = False

    def on_test_begin(self, logs=None):
        used = recompute_statistics(self.model, self.dataset.take(self.n_batches).as_numpy_iterator())
        if not self._logged:
            self.log(f"Batch-norm statistics recomputed from {used} training batches ({self.source}) before each "
                     "validation (train.bn_recompute_batches, train.bn_recompute_from).")
            self._logged = True


SOURCES = ("augmented", "unaugmented")


def statistics_source(task, config, handle, augmented_train, limit=None):
    """The batches the statistics are recomputed from, by `train.bn_recompute_from`:
    "augmented" (the default): the training batches as `fit` sees them (larson18 r512: moving
    averages that lag the weights); "unaugmented": training images prepared as for evaluation, in
    a fixed order (rsna17_winner: augmented images have other statistics than the plain images
    the network is validated and tested on; README, "Why the thumbnail run's validation MAE swings")."""
    from common.errors import UsageError
    source = config.train.get("bn_recompute_from", "augmented")
    if source not in SOURCES:
        raise UsageError(f"train.bn_recompute_from must be one of {SOURCES}; received {source!r}")
    if source == "augmented":
        return augmented_train
    return pipeline_eval(task, config, handle, "train", limit)


def diagnose(task, run_dir, split: str = "validation", n_batches: int = 50, data_dir=None, limit=None,
             log=print) -> dict:
    """The MAE (months) of a trained run on `split` four ways: with the moving averages it was
    saved with, with statistics recomputed from `n_batches` training batches (augmented, as in
    training), the same from unaugmented training images, and with each evaluation batch's own
    statistics (training-mode batch norm). Averages that lag the weights show as a first number
    far above the others."""
    import numpy as np

    from common import data as data_lib
    from common import train as train_lib
    from common.runs import RunDir
    config = RunDir(run_dir).config()
    if config is None:
        raise ValueError(f"{run_dir}: no config.json; pass a run directory made by `train`")
    handle = data_lib.resolve(RunDir(run_dir).record().get("dataset", {}).get("name"), data_dir=data_dir, log=log)
    datasets = train_lib.build_datasets(task, config, handle, ["train"], limit=limit)
    model, weights = train_lib.load_trained(task, config, run_dir, log=log)
    evaluation = pipeline_eval(task, config, handle, split, limit)
    out = {"weights": str(weights), "split": split, "bn_layers": len(batchnorm_layers(model))}

    def mae(training: bool) -> float:
        errors = []
        for inputs, y, _ in evaluation.as_numpy_iterator():
            if training:  # each batch's own statistics; the moving averages are restored afterwards
                saved = [(layer, np.asarray(layer.moving_mean), np.asarray(layer.moving_variance))
                         for layer in batchnorm_layers(model)]
                months = task.predict(_TrainingMode(model), inputs, config)
                for layer, mean, var in saved:
                    layer.moving_mean.assign(mean)
                    layer.moving_variance.assign(var)
            else:
                months = task.predict(model, inputs, config)
            estimate = np.asarray(next(iter(months.values())), np.float64).reshape(-1)
            if isinstance(y, dict):
                (y,) = y.values()
            errors.append(np.abs(estimate - np.asarray(y, np.float64).reshape(-1)))
        return float(np.concatenate(errors).mean())
    out["moving_averages"] = mae(False)
    out["batch_statistics"] = mae(True)
    out["recomputed_batches"] = recompute_statistics(model, datasets["train"].take(n_batches).as_numpy_iterator())
    out["recomputed"] = mae(False)
    # The same from training images prepared as for evaluation (no augmentation): tells statistics
    # that lag the weights from statistics that differ between augmented and plain images.
    plain = pipeline_eval(task, config, handle, "train", limit)
    recompute_statistics(model, plain.take(n_batches).as_numpy_iterator())
    out["recomputed_unaugmented"] = mae(False)
    return out


def pipeline_eval(task, config, handle, split, limit):
    from common import pipeline
    from common import train as train_lib
    return pipeline.make_dataset(handle, split, preprocess=task.data.eval_preprocess(config),
                                 to_model_io=train_lib.with_ids(task.data.to_model_io(config)),
                                 batch_size=config.train.batch_size, training=False, limit=limit,
                                 keys=task.data.example_keys, filter=task.data.example_filter(config))


class _TrainingMode:
    """A model whose predict_on_batch / __call__ run in training mode (batch statistics)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, inputs, training=True, **kwargs):
        return self.model(inputs, training=True, **kwargs)

    def predict_on_batch(self, inputs):
        out = self.model(inputs, training=True)
        return keras.tree.map_structure(lambda t: keras.ops.convert_to_numpy(t), out)

    def __getattr__(self, name):
        return getattr(self.model, name)
