"""Batch-norm statistics recomputed from the current weights (common/batchnorm.py)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from common import batchnorm


def _model():
    inputs = keras.Input((3,))
    x = keras.layers.Dense(4, name="dense")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(x))


def test_moving_statistics_become_the_average_of_the_batch_statistics_and_momentum_is_restored():
    model = _model()
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.full(4, 100.0, "float32"))  # stale averages, as after fast weight changes
    bn.moving_variance.assign(np.full(4, 1e-4, "float32"))
    rng = np.random.default_rng(0)
    batches = [rng.normal(5.0, 2.0, (8, 3)).astype("float32") for _ in range(6)]
    used = batchnorm.recompute_statistics(model, [(b, np.zeros(8)) for b in batches])
    assert used == 6 and bn.momentum == 0.99
    dense = keras.Model(model.input, model.get_layer("dense").output)
    features = [np.asarray(dense(b)) for b in batches]
    np.testing.assert_allclose(np.asarray(bn.moving_mean), np.mean([f.mean(0) for f in features], 0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), np.mean([f.var(0) for f in features], 0), rtol=1e-3)
    # Inference now centres the features of these batches as training did: the BN outputs over all of
    # them average to beta (0), where the stale averages put them near -100 / 0.01.
    normalised = keras.Model(model.input, bn.output)
    outputs = np.concatenate([np.asarray(normalised(b, training=False)) for b in batches])
    np.testing.assert_allclose(outputs.mean(0), np.zeros(4), atol=1e-3)


def test_the_callback_recomputes_before_each_validation_inside_fit():
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 1.0, (64, 3)).astype("float32")
    y = x.sum(1, keepdims=True)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    messages = []
    callback = batchnorm.RecomputeBeforeValidation(train, 4, log=messages.append)
    seen = []

    class Spy(keras.callbacks.Callback):  # what the validation saw, read right after it
        def on_test_end(self, logs=None):
            seen.append(np.asarray(self.model.get_layer("bn").moving_mean).copy())
    model.fit(train, validation_data=train, epochs=2, verbose=0, callbacks=[callback, Spy()])
    assert len(seen) == 2 and len(messages) == 1 and "from 4 training batches" in messages[0]
    dense = keras.Model(model.input, model.get_layer("dense").output)
    expected = np.mean([np.asarray(dense(xb)).mean(0) for xb, _ in train], 0)  # the final weights' statistics
    np.testing.assert_allclose(seen[-1], expected, rtol=1e-4, atol=1e-4)


def test_a_model_without_batch_norm_is_left_alone():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    assert batchnorm.recompute_statistics(model, [np.zeros((2, 3), "float32")]) == 0


def test_an_unknown_statistics_source_is_refused_with_the_choices():
    from common.config import Config
    from common.errors import UsageError
    config = Config({"train": {"bn_recompute_from": "validation"}})
    with pytest.raises(UsageError, match=r"bn_recompute_from must be one of \('augmented', 'unaugmented'\)"):
        batchnorm.statistics_source(None, config, None, augmented_train="fit's batches")
    assert batchnorm.statistics_source(None, Config({"train": {}}), None, augmented_train="fit's batches") == "fit's batches"


@pytest.mark.parametrize("source", ["augmented", "unaugmented"])
def test_train_recomputes_before_validation_and_the_diagnosis_reads_a_run_three_ways(tiny_task, tmp_path,
                                                                                       tiny_phantoms, monkeypatch,
                                                                                       source):
    import importlib
    import json
    import sys

    run, _ = tiny_task
    out = tmp_path / "run"
    result = run("train", "--data", "phantoms/tiny", "--out", str(out), "--epochs", "2", "--no-eval",
                 "--set", "model.batchnorm=True", "--set", "train.bn_recompute_batches=2",
                 "--set", f"train.bn_recompute_from={source}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Batch-norm statistics recomputed from 2 training batches ({source}) before each validation" in result.stdout
    assert json.loads((out / "config.json").read_text())["train"]["bn_recompute_batches"] == 2
    monkeypatch.setenv("BONEAGE_DATA_DIR", str(tiny_phantoms.version_dir.parents[2]))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("tiny_task", None)
    task = importlib.import_module("tiny_task").TASK
    found = batchnorm.diagnose(task, out, n_batches=3, log=lambda *_: None)
    assert found["bn_layers"] == 1 and found["recomputed_batches"] == 3 and found["split"] == "validation"
    for key in ("moving_averages", "recomputed", "recomputed_unaugmented", "batch_statistics"):
        assert 0 <= found[key] < 1000, found
    # Saved after a recomputation, the averages describe the saved weights: recomputing again from
    # other batches of the same data changes the error little.
    assert abs(found["moving_averages"] - found["recomputed"]) < 0.25 * found["moving_averages"] + 2, found
