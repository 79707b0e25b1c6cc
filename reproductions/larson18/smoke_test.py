"""larson18 end to end on phantoms: train (small variant) -> evaluate -> predict a real radiograph.

One training run is shared by the tests of this module (building ResNet-50 costs time on CPU).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, SUBPROCESS_TIMEOUT_S

from reproductions.larson18.config import get_config

EPOCHS = get_config("small").train.epochs  # the quick start's own run, as a user gets it


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("larson18") / "run"
    env = dict(os.environ, BONEAGE_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "reproductions.larson18", "train", "--small", "--data", "phantoms", "--out", str(out)]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, env, result


def mean_predictor_mae(data_dir):
    """MAE on validation of always predicting the training labels' mean."""
    from common import data, pipeline
    handle = data.resolve("phantoms", data_dir=data_dir, log=lambda *_: None)

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
    assert ev["images"] == 400 and ev["primary_estimate"] == "expected" and set(ev["estimates"]) == {"expected", "argmax"}
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
