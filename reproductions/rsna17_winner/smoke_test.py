"""rsna17_winner end to end on phantoms: a short CPU run learns -> evaluate -> predict a real radiograph.

One run is shared by the tests of this module: the `small` variant (96 px, Adam 1e-4 from random
weights, the sex input, the dense head and its months layer) on phantoms/small, with the suite's
stand-in backbone in place of InceptionV3 (conftest.STAND_IN_BACKBONE) and the geometric
augmentation switched off by `--set`: the test asks whether the model and the pipeline learn the
age within a CI budget; the augmentation itself is tested in task_test.py.

Calibration (this command with 20 epochs, 2 CPU cores, 58 s of training): validation MAE 92.7,
44.5, 26.6, 19.9, 17.4 after epochs 1-5, then 17.4-23.4 up to epoch 20, against 55.5 for
predicting the training mean. InceptionV3 itself (phantoms, 6 epochs, 19 min in CI) swung
between 35 and 83 and once missed half the mean predictor's error.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, STAND_IN_BACKBONE, SUBPROCESS_TIMEOUT_S, validation_mean_predictor_mae

DATA = "phantoms/small"  # 600 / 150 / 150 at 128 px
EPOCHS = 10
NO_GEOMETRY = ["--set", "train.augmentation.rotation_degrees=0", "--set", "train.augmentation.shift_fraction=0",
               "--set", "train.augmentation.zoom_fraction=0"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("rsna17_winner") / "run"
    env = dict(os.environ, BONEAGE_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "reproductions.rsna17_winner", "train", "--small", "--data", DATA,
           "--epochs", str(EPOCHS), "--out", str(out), *NO_GEOMETRY, *STAND_IN_BACKBONE]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, env


def test_a_short_cpu_run_learns(trained_run, data_dir):
    out, _ = trained_run
    history = pd.read_csv(out / "metrics.csv")
    baseline = validation_mean_predictor_mae(DATA, data_dir)
    assert len(history) == EPOCHS
    assert history["val_mae"].min() <= 0.5 * baseline, (history["val_mae"].tolist(), baseline)


def test_evaluation_writes_its_files_and_record(trained_run):
    out, _ = trained_run
    for name in ("predictions.csv", "metrics.json", "predicted_vs_reference.png", "bland_altman.png"):
        assert (out / "test" / name).stat().st_size > 0, name
    record = json.loads((out / "run.json").read_text())
    ev = record["evaluations"]["test"]
    assert ev["images"] == 150 and ev["primary_estimate"] == "regression"
    assert record["config"]["model"]["sex_input"] is True


def test_predict_on_a_real_radiograph_uses_the_sex(trained_run, shared_data, tmp_path):
    out, env = trained_run
    image = shared_data / "rsna-sample" / "images" / "1377.png"
    months = {}
    for sex in ("F", "M"):
        csv = tmp_path / f"pred-{sex}.csv"
        cmd = [sys.executable, "-m", "reproductions.rsna17_winner", "predict", str(image), "--sex", sex,
               "--out", str(out), "--output-csv", str(csv)]
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
        assert result.returncode == 0, result.stderr[-3000:]
        months[sex] = float(pd.read_csv(csv).iloc[0]["boneage_months"])
    assert all(np.isfinite(v) for v in months.values())
    assert months["F"] != months["M"]
