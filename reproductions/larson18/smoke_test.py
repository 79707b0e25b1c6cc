"""larson18 end to end on phantoms: train (small variant) -> evaluate -> predict a real radiograph.

One training run is shared by the tests of this module: the `small` variant (72-px load, 64-px
crops, three CLAHE channels, the 2 x 240 sex-half head, its loss, ten-crop evaluation, both
read-outs) on phantoms/small, with the suite's stand-in backbone in place of ResNet-50
(conftest.STAND_IN_BACKBONE: ResNet-50 took an hour to learn here on a 2-core CI machine).

Calibration (this exact command, 2 CPU cores): validation MAE 53.9, 48.0, 41.7, 36.2, 33.2 after
epochs 1-5, 28.5 after 8, 25.3 after 13, 23.0 after 30, against 55.5 for predicting the training
mean (0.41x); training took 46 s. The test asks for at most 0.5x.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, STAND_IN_BACKBONE, SUBPROCESS_TIMEOUT_S, requires_jax

DATA = "phantoms/small"  # 600 / 150 / 150 at 128 px
EPOCHS = 30


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("larson18") / "run"
    env = dict(os.environ, BONEAGE_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "reproductions.larson18", "train", "--small", "--data", DATA, "--epochs", str(EPOCHS),
           "--out", str(out), *STAND_IN_BACKBONE]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, env, result


def mean_predictor_mae(data_dir):
    """MAE on validation of always predicting the training labels' mean."""
    from common import data, pipeline
    handle = data.resolve(DATA, data_dir=data_dir, log=lambda *_: None)

    def labels(split):
        return np.array([float(e["boneage_months"]) for e in pipeline.read_split(handle, split)])
    return float(np.abs(labels("validation") - labels("train").mean()).mean())


def test_training_learns(trained_run, data_dir):
    out, _, _ = trained_run
    history = pd.read_csv(out / "metrics.csv")
    baseline = mean_predictor_mae(data_dir)
    assert history["val_mae"].min() <= 0.5 * baseline, (history["val_mae"].tolist(), baseline)
    assert len(history) == EPOCHS


def test_evaluation_writes_both_read_outs_and_every_file(trained_run):
    out, _, result = trained_run
    assert "No RSNA data configured" not in result.stdout  # --data was given explicitly
    test = out / "test"
    for name in ("predictions.csv", "metrics.json", "metrics.md", "predicted_vs_reference.png", "bland_altman.png",
                 "error_by_age.png", "learning_curves.png"):
        assert (test / name).stat().st_size > 0, name
    assert (test / "estimate-argmax" / "metrics.json").exists()
    record = json.loads((out / "run.json").read_text())
    ev = record["evaluations"]["test"]
    assert ev["images"] == 150 and ev["primary_estimate"] == "expected" and set(ev["estimates"]) == {"expected", "argmax"}
    assert record["status"] == "evaluated" and record["epochs_done"] == EPOCHS


def test_predict_on_a_real_radiograph(trained_run, shared_data, tmp_path):
    out, env, _ = trained_run
    image = shared_data / "rsna-sample" / "images" / "1377.png"
    csv = tmp_path / "pred.csv"
    cmd = [sys.executable, "-m", "reproductions.larson18", "predict", str(image), "--sex", "F", "--out", str(out),
           "--output-csv", str(csv)]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    row = pd.read_csv(csv).iloc[0]
    assert 0 <= row["boneage_months"] <= 240 and 0 <= row["boneage_months_argmax"] <= 239
    assert row["male"] == 0


@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("jax", marks=requires_jax)])
def test_one_epoch_trains_on_each_backend(backend, tmp_path, data_dir):
    """The small variant's first 64 images, one epoch, on each Keras backend (tf.data feeds both):
    the same command, the same run directory and record."""
    out = tmp_path / "run"
    env = dict(os.environ, BONEAGE_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND=backend,
               JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "reproductions.larson18", "train", "--small", "--data", DATA, "--epochs", "1",
           "--limit", "64", "--no-eval", "--out", str(out), *STAND_IN_BACKBONE]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["hardware"]["keras_backend"] == backend and record["epochs_done"] == 1
    history = pd.read_csv(out / "metrics.csv")
    assert len(history) == 1 and np.isfinite(history[["loss", "val_mae"]].to_numpy()).all()
    assert (out / "checkpoints" / "last.weights.h5").exists()
