"""lite0_regressor end to end on phantoms: train -> evaluate -> predict through the shared machinery.

The `small` variant (64 px, random weights) on phantoms/small for 2 epochs of 64 images, with
the geometric augmentation off (`--set`): the run must finish, evaluate and predict with a
sound record. Two epochs of four steps are too few to show learning (the loss is still noisy);
that the network learns bone age is measured on
the real thumbnails and radiographs (README), not in CI: on this project's 2-core CI machine the
suite's training runs already take most of its time budget.
"""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT, SUBPROCESS_TIMEOUT_S

EPOCHS = 2
NO_GEOMETRY = ["--set", "train.augmentation.rotation_degrees=0", "--set", "train.augmentation.shift_fraction=0",
               "--set", "train.augmentation.zoom_fraction=0"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("lite0_regressor") / "run"
    env = dict(os.environ, BONEAGE_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "reproductions.lite0_regressor", "train", "--small", "--data", "phantoms/small",
           "--epochs", str(EPOCHS), "--limit", "64", "--out", str(out), *NO_GEOMETRY]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, env


def test_the_run_finishes_every_epoch_with_finite_metrics(trained_run):
    out, _ = trained_run
    history = pd.read_csv(out / "metrics.csv")
    assert len(history) == EPOCHS
    assert history[["loss", "val_mae"]].notna().all().all() and (history["val_mae"] < 1e4).all()


def test_evaluation_record_and_predict(trained_run, tmp_path):
    out, env = trained_run
    record = json.loads((out / "run.json").read_text())
    assert record["evaluations"]["test"]["images"] == 64 and record["weights"] == "none"
    image = tmp_path / "hand.png"
    import cv2
    import numpy as np
    cv2.imwrite(str(image), (np.random.default_rng(0).random((80, 60)) * 255).astype("uint8"))
    csv = tmp_path / "pred.csv"
    cmd = [sys.executable, "-m", "reproductions.lite0_regressor", "predict", str(image), "--sex", "F",
           "--out", str(out), "--output-csv", str(csv)]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(csv)
    assert table["boneage_months"].notna().all() and table["run_dir"].iloc[0] == str(out)


def test_the_imagenet_variant_refuses_to_train_without_weights(tmp_path, data_dir):
    env = dict(os.environ, BONEAGE_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "reproductions.lite0_regressor", "train", "--variant", "thumbs", "--data",
           "phantoms/small", "--out", str(tmp_path / "run")]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 2 and "fine-tunes ImageNet weights: pass --weights" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
