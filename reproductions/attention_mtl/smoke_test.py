"""attention_mtl end to end on phantoms: a short CPU run learns -> evaluate writes coverage -> predict gives intervals.

One run is shared by the tests of this module: the `small` variant (64 px, attention pooling with
a query per sex, the Laplace head with the CRPS, the mask and key-point heads on) on phantoms/small, with the
suite's stand-in backbone in place of EfficientNet-Lite0 (conftest.STAND_IN_BACKBONE; Lite0
itself is built and run in model_test.py) and the geometric augmentation off (`--set`; the
mask moving with its image is tested in task_test.py).

Calibration (this command, 6 epochs, on the loaded 2-core machine of 2026-12-03: 185 s of
training, 122 s of it the first epoch's cache and graph building): validation MAE 34.1, 23.4,
18.6, 16.1, 15.9, 14.9 after epochs 1-6, against ~55 for predicting the training mean
(rsna17_winner/smoke_test.py measured 55.5 on the same split). Again with the key-point head on
(2026-12, 97 s of training): validation MAE 39.5, 22.5, 26.3, 19.4, 17.0, 16.4; the heatmaps'
cross-entropy 4.35 -> 3.43 nats (metrics.csv logs it times keypoint_weight 0.1).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, STAND_IN_BACKBONE, SUBPROCESS_TIMEOUT_S, validation_mean_predictor_mae
from reproductions.attention_mtl import conformal
from reproductions.attention_mtl.config import get_config

DATA = "phantoms/small"  # 600 / 150 / 150 at 128 px, with hand masks and key points
EPOCHS = get_config("small").train.epochs
NO_GEOMETRY = ["--set", "train.augmentation.rotation_degrees=0", "--set", "train.augmentation.shift_fraction=0",
               "--set", "train.augmentation.zoom_fraction=0"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("attention_mtl") / "run"
    env = dict(os.environ, BONEAGE_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "reproductions.attention_mtl", "train", "--small", "--data", DATA, "--out", str(out),
           *NO_GEOMETRY, *STAND_IN_BACKBONE]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, env


def test_a_short_cpu_run_learns_with_the_auxiliary_heads(trained_run, data_dir):
    out, _ = trained_run
    history = pd.read_csv(out / "metrics.csv")
    baseline = validation_mean_predictor_mae(DATA, data_dir)
    assert len(history) == EPOCHS and {"val_mask_loss", "val_heatmaps_loss"} <= set(history)  # the auxiliary heads
    assert history["val_heatmaps_loss"].iloc[-1] < history["val_heatmaps_loss"].iloc[0]  # trained beside the age
    assert history["val_mae"].min() <= 0.5 * baseline, (history["val_mae"].tolist(), baseline)


def test_evaluation_writes_coverage_width_and_spearman(trained_run):
    out, _ = trained_run
    calibration = json.loads((out / "conformal.json").read_text())
    assert calibration["fitted_on"]["split"] == "validation" and calibration["fitted_on"]["images"] == 150
    metrics = json.loads((out / "test" / "metrics.json").read_text())["uncertainty"]
    assert metrics["images"] == 150 and not metrics["in_sample"]
    for name in ("80", "90", "95"):
        level = metrics["levels"][name]
        assert 0 <= level["coverage"] <= 1 and level["mean_width_months"] > 0
    widths = [metrics["levels"][n]["mean_width_months"] for n in ("80", "90", "95")]
    assert widths == sorted(widths)
    assert metrics["spearman_scale_vs_abs_error"] is not None
    assert "split-conformal" in (out / "test" / "metrics.md").read_text()
    from PIL import Image
    with Image.open(out / "test" / "intervals.png") as figure:  # the interval plot (interval_plot.py) beside it
        assert figure.size[0] > 2 * figure.size[1]  # three panels side by side
    table = pd.read_csv(out / "test" / "predictions.csv")
    assert set(conformal.interval_columns()) <= set(table.columns)
    assert (table["lower_90"] <= table["boneage_pred"]).all() and (table["boneage_pred"] <= table["upper_90"]).all()
    record = json.loads((out / "run.json").read_text())
    assert record["evaluations"]["test"]["extra_metrics"]["uncertainty"]["levels"]["90"]["coverage"] is not None
    assert record["evaluations"]["test"]["primary_estimate"] == "location"


def test_evaluation_draws_the_attention_and_its_mass_per_hand_region(trained_run):
    out, _ = trained_run
    from PIL import Image

    from common.phantoms import REGION_NAMES
    with Image.open(out / "test" / "attention_sheet.png") as sheet:
        sheet.verify()
    table = pd.read_csv(out / "test" / "attention_regions.csv")
    assert len(table) == 150 and table["id"].is_unique
    regions = table[[f"region_{name}" for name in REGION_NAMES]]
    np.testing.assert_allclose(regions.sum(axis=1), table["in_hand_mask"], atol=1e-6)
    assert (table["in_hand_mask"] <= 1 + 1e-6).all()
    attention = json.loads((out / "test" / "metrics.json").read_text())["attention"]
    assert attention["images"] == 150 and set(attention["by_age_band"]) <= {"0-2", "2-6", "6-10", "10-14", "14-19"}
    assert "carpals" in (out / "test" / "attention_regions.md").read_text()
    record = json.loads((out / "run.json").read_text())
    assert record["evaluations"]["test"]["extra_metrics"]["attention"]["all"]["images"] == 150


def test_predict_writes_the_estimate_and_its_intervals(trained_run, tmp_path):
    out, env = trained_run
    import cv2
    image = tmp_path / "hand.png"
    cv2.imwrite(str(image), (np.random.default_rng(0).random((80, 60)) * 255).astype("uint8"))
    csv = tmp_path / "pred.csv"
    cmd = [sys.executable, "-m", "reproductions.attention_mtl", "predict", str(image), "--sex", "F",
           "--out", str(out), "--output-csv", str(csv), "--explain"]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    row = pd.read_csv(csv).iloc[0]
    assert row["lower_95"] < row["lower_90"] < row["lower_80"] < row["boneage_months"] < row["upper_80"]
    assert row["run_dir"] == str(out) and "upper_95" in result.stdout  # printed, too
    overlay = tmp_path / "hand_attention.png"  # --explain: beside the CSV
    assert overlay.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "Wrote 1 attention overlays" in result.stdout + result.stderr


def test_the_thumbnail_start_variant_refuses_to_train_without_init_from(tmp_path, data_dir):
    """r512_fromthumbs is "started from the thumbs run" by its name: without --init-from it would be an
    ImageNet-start run under that name, so train refuses it before building anything."""
    env = dict(os.environ, BONEAGE_DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="2")
    weights = tmp_path / "imagenet.h5"  # never read: the refusal comes first
    cmd = [sys.executable, "-m", "reproductions.attention_mtl", "train", "--variant", "r512_fromthumbs", "--data",
           "phantoms/small", "--weights", str(weights), "--out", str(tmp_path / "run")]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 2 and "pass --init-from RUN_DIR" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
