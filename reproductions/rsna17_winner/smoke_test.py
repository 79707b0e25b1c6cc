"""rsna17_winner end to end on phantoms: a short CPU run learns -> evaluate -> predict a real radiograph.

One run is shared by the tests of this module: the `small` variant (96 px, Adam 1e-4 from random
weights) on the default phantoms (2,000 training images, so each epoch has 125 steps and the
batch-norm moving averages settle), with the geometric augmentation switched off by `--set`: the
test asks whether the network and the pipeline learn the age within a CI budget; the
augmentation itself is tested in task_test.py.

Calibration (2 CPU cores, shared with other jobs): this exact run reached val MAE 57.5, 73.0,
60.1, 42.3, 25.4, 25.3 over its 6 epochs against the mean predictor's ~57, i.e. 0.44x at the
last two epochs. On phantoms/small (37 steps per epoch) validation lagged far behind training
(val 31.6 at best after 12 epochs with Adam 1e-3; swings to 150) because the moving variances
start at 1 and too few steps wash them out.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, SUBPROCESS_TIMEOUT_S

EPOCHS = 6
NO_GEOMETRY = ["--set", "train.augmentation.rotation_degrees=0", "--set", "train.augmentation.shift_fraction=0",
               "--set", "train.augmentation.zoom_fraction=0"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("rsna17_winner") / "run"
    env = dict(os.environ, BONEAGE_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "reproductions.rsna17_winner", "train", "--small", "--data", "phantoms",
           "--epochs", str(EPOCHS), "--out", str(out), *NO_GEOMETRY]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, env


def mean_predictor_mae(data_dir):
    """MAE on validation of always predicting the training labels' mean."""
    from common import data, pipeline
    handle = data.resolve("phantoms", data_dir=data_dir, log=lambda *_: None)

    def labels(split):
        return np.array([float(e["boneage_months"]) for e in pipeline.read_split(handle, split)])
    return float(np.abs(labels("validation") - labels("train").mean()).mean())


def test_a_short_cpu_run_learns(trained_run, data_dir):
    out, _ = trained_run
    history = pd.read_csv(out / "metrics.csv")
    baseline = mean_predictor_mae(data_dir)
    assert len(history) == EPOCHS
    assert history["val_mae"].min() <= 0.5 * baseline, (history["val_mae"].tolist(), baseline)


def test_evaluation_writes_its_files_and_record(trained_run):
    out, _ = trained_run
    for name in ("predictions.csv", "metrics.json", "predicted_vs_reference.png", "bland_altman.png"):
        assert (out / "test" / name).stat().st_size > 0, name
    record = json.loads((out / "run.json").read_text())
    ev = record["evaluations"]["test"]
    assert ev["images"] == 400 and ev["primary_estimate"] == "regression"
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
