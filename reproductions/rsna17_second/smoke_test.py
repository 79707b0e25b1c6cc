"""rsna17_second end to end on phantoms: train (small variant) -> fuse -> evaluate -> predict a real radiograph.

One training run is shared by the tests of this module: the `small` variant (crop + CLAHE, 68-px
image, 16 of the 49 patches per radiograph and epoch, the sex-specific model, the three fusions)
with the suite's stand-in backbone in place of ResNet-50 (conftest.STAND_IN_BACKBONE). To stay
within the suite's CPU budget it trains the girls' model only (`--sex female`); routing between
the two sexes' models is tested in model_test.py, and the bookkeeping of `--sex both` (one sub-run
per sex, skip when finished) in task_test.py.

Calibration (this command with the variant's 4 epochs, 2 CPU cores, 15 s of training): patch
validation MAE 37.7, 30.7, 28.6, 28.1; fused over the 49 patches: mean 21.7, median 20.6,
learned 16.7 months, against 51.3 for predicting the girls' training mean (0.42x). The test runs
10 epochs and asks for at most 0.5x.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, STAND_IN_BACKBONE, SUBPROCESS_TIMEOUT_S

EPOCHS = 10


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("rsna17_second") / "run"
    env = dict(os.environ, BONEAGE_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "reproductions.rsna17_second", "train", "--small", "--sex", "female",
           "--data", "phantoms/small", "--out", str(out), "--split", "validation", "--epochs", str(EPOCHS),
           *STAND_IN_BACKBONE]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, env, result


def mean_predictor_mae(data_dir, male=0):
    """Validation MAE of always predicting the training labels' mean, both for the model's sex."""
    from common import data, pipeline
    handle = data.resolve("phantoms/small", data_dir=data_dir, log=lambda *_: None)

    def labels(split):
        return np.array([float(e["boneage_months"]) for e in pipeline.read_split(handle, split)
                         if int(e["male"]) == male])
    return float(np.abs(labels("validation") - labels("train").mean()).mean())


def test_training_learns(trained_run, data_dir):
    out, _, _ = trained_run
    baseline = mean_predictor_mae(data_dir)
    fused = json.loads((out / "validation" / "metrics.json").read_text())["overall"]["mae"]["value"]
    history = pd.read_csv(out / "female" / "metrics.csv")
    assert len(history) == EPOCHS
    assert fused <= 0.5 * baseline, (fused, baseline, history["val_mae"].tolist())


def test_evaluation_writes_every_fusion_and_the_run_record(trained_run):
    out, _, result = trained_run
    record = json.loads((out / "run.json").read_text())
    ev = record["evaluations"]["validation"]
    assert ev["primary_estimate"] == "mean" and set(ev["estimates"]) == {"mean", "median", "learned"}
    assert ev["images"] == record["sub_runs"]["female"]["validation_images"]  # girls only
    assert record["status"] == "evaluated" and record["sex"] == "female" and set(record["sub_runs"]) == {"female"}
    for name in ("predictions.csv", "metrics.json", "predicted_vs_reference.png", "learning_curves.png"):
        assert (out / "validation" / name).stat().st_size > 0, name
    for fusion in ("median", "learned"):
        assert (out / "validation" / f"estimate-{fusion}" / "metrics.json").exists()
    fitted = json.loads((out / "female" / "fusion.json").read_text())
    weights = np.array(fitted["weights"])
    assert weights.shape == (49,) and (weights >= 0).all() and weights.sum() == pytest.approx(1.0, abs=1e-4)
    assert not (out / "male").exists()


def test_predict_on_a_real_radiograph(trained_run, shared_data, tmp_path):
    from common.train import main
    from reproductions.rsna17_second.task import TASK
    out, _, _ = trained_run
    image = shared_data / "rsna-sample" / "images" / "1377.png"  # a girl's raw film
    csv = tmp_path / "pred.csv"
    assert main(TASK, ["predict", str(image), "--sex", "F", "--out", str(out), "--output-csv", str(csv)]) == 0
    row = pd.read_csv(csv).iloc[0]
    for column in ("boneage_months", "boneage_months_median", "boneage_months_learned"):
        assert 0 <= row[column] <= 240, row
    assert row["male"] == 0
    # This run has no boys' model: a boy's radiograph is refused with a clear message.
    assert main(TASK, ["predict", str(image), "--sex", "M", "--out", str(out), "--output-csv", str(csv)]) == 2
