"""iglovikov18 end to end on phantoms: each stage trains and works, and `predict` runs the whole chain.

The networks are trained once per module (small variant on phantoms/small; segmentation and key
points for fewer epochs than a user's run, the age networks for more, see AGE_EPOCHS) and shared
by the tests; commands run in-process through the package's `main`, except
`predict`, which runs as a user would run it.

Calibration (short CPU runs on phantoms/small):
* segment, 3 epochs: val Dice 0.89 / 0.96 / 0.96 after epochs 1-3 (12 epochs: test 0.984). The
  classical bootstrap the real-image masks start from reaches 0.926 on phantoms, so the U-Net
  must beat 0.93.
* keypoints, 6 epochs: val error 4.8 / 3.9 / 3.1 / 2.1 / 1.9 / 2.0 px at 64 px (20 epochs:
  test 1.23 px), so 3 px.
* age networks: see the comment above AGE_EPOCHS.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, SUBPROCESS_TIMEOUT_S
from reproductions.iglovikov18.__main__ import main

STAGE_DATA = "phantoms/small"   # 600 / 150 / 150 at 128 px
AGE_DATA = STAGE_DATA           # the age networks too: the default phantoms (2,000 at 256 px) cost a CI worker minutes to build
SEGMENT_EPOCHS = 3
KEYPOINT_EPOCHS = 6
# Age networks: the small variant with a cosine decay over AGE_EPOCHS (more than its own 3 / 5, which
# were set for the 2,000 default phantoms). The mean predictor's val MAE is 55.5 months on
# phantoms/small. Measured before the test was written (2 CPU cores), val MAE after the last epoch:
# regression carpal 18.1 and hand 20.2 after 8 epochs (30 s, 63 s of training); classification hand
# 23.0 after 12 (98 s), metacarpal 28.0 after 12 but 22.7 after 20 (88 s): the 240-way classifiers
# need the longer run.
AGE_EPOCHS = {"regress": 8, "classify": 20}
AGE_NETWORKS = [(stage, region) for region in ("hand", "carpal", "metacarpal") for stage in ("regress", "classify")]


def _run(args):
    assert main(args) == 0, args


@pytest.fixture(scope="module")
def phantoms(data_dir):
    from common import data
    return data.resolve(AGE_DATA, data_dir=data_dir, log=lambda *_: None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir, phantoms):
    # A results folder of its own (<root>/iglovikov18/<run>): the region table reads every
    # <paper>/<run>/run.json under the root, and pytest's shared base folder holds other tests'
    # records, some deliberately corrupt.
    folder = tmp_path_factory.mktemp("results") / "iglovikov18"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def segment_run(runs, data_dir):
    out = runs / "segment"
    _run(["train", "--stage", "segment", "--small", "--data", STAGE_DATA, "--data-dir", str(data_dir), "--out", str(out),
          "--epochs", str(SEGMENT_EPOCHS)])
    return out


@pytest.fixture(scope="module")
def keypoints_run(runs, data_dir):
    out = runs / "keypoints"
    _run(["train", "--stage", "keypoints", "--small", "--data", STAGE_DATA, "--data-dir", str(data_dir), "--out", str(out),
          "--epochs", str(KEYPOINT_EPOCHS)])
    return out


@pytest.fixture(scope="module")
def age_runs(runs, data_dir):
    out = {}
    for stage, region in AGE_NETWORKS:
        out[(stage, region)] = runs / f"{stage}-{region}"
        _run(["train", "--stage", stage, "--region", region, "--small", "--data", AGE_DATA, "--data-dir", str(data_dir),
              "--out", str(out[(stage, region)]), "--epochs", str(AGE_EPOCHS[stage])])
    return out


def mean_predictor_mae(handle):
    """MAE on validation of always predicting the training labels' mean."""
    from common import pipeline

    def labels(split):
        return np.array([float(e["boneage_months"]) for e in pipeline.read_split(handle, split)])
    return float(np.abs(labels("validation") - labels("train").mean()).mean())


def test_segmentation_beats_the_classical_bootstrap_on_phantoms(segment_run):
    record = json.loads((segment_run / "run.json").read_text())
    test = record["stage_evaluations"]["test"]
    assert test["images"] == 150 and test["dice"]["value"] > 0.93, test
    assert 0.0 < test["iou"]["value"] < test["dice"]["value"]
    assert record["best_epoch"] >= 1 and "best_val_dice" in record
    assert (segment_run / "test" / "masks.png").stat().st_size > 0


def _unlabelled_folder(root, n=24):
    """Phantom radiographs as a folder dataset without masks or key points (like real ones)."""
    import cv2

    from common import phantoms
    (root / "images").mkdir(parents=True)
    rows, truth = [], {}
    for i in range(n):
        p = phantoms.sample_phantom(i, 3, 128)
        cv2.imwrite(str(root / "images" / f"u{i}.png"), p.image)
        truth[f"u{i}"] = p.mask
        rows.append({"id": f"u{i}", "boneage": round(p.boneage_months, 1), "male": int(p.male),
                     "split": "train" if i < 16 else ("validation" if i < 20 else "test")})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return truth


def test_refinement_round_keeps_agreeing_masks_and_trains_on_them(segment_run, data_dir, tmp_path):
    """refine-masks keeps the U-Net's masks that agree with the bootstrap; a second round trains on them."""
    from reproductions.iglovikov18 import chain
    from reproductions.iglovikov18 import masks as ig_masks
    folder = tmp_path / "unlabelled"
    truth = _unlabelled_folder(folder)
    npz = tmp_path / "pseudo.npz"
    _run(["refine-masks", "--segment-run", str(segment_run), "--data", f"folder:{folder}", "--data-dir", str(data_dir),
          "--out", str(npz)])
    kept = np.load(npz)
    assert 12 <= len(kept["ids"]) <= 20 and kept["masks"].shape[1:] == (64, 64)      # train + validation only
    for i, m in zip(kept["ids"], kept["masks"]):
        reference = chain.letterbox_numpy(truth[str(i)], 64)
        assert ig_masks.dice(m, reference) > 0.85, i
    out = tmp_path / "round2"
    _run(["train", "--stage", "segment", "--small", "--data", f"folder:{folder}", "--data-dir", str(data_dir),
          "--out", str(out), "--epochs", "1", "--init-from", str(segment_run), "--set", f"segment.pseudo_masks={npz}"])
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["segment"]["pseudo_masks"] == str(npz) and record["config"]["segment"]["init_from"]
    test = record["stage_evaluations"]["test"]
    assert test["mask_source"].startswith("bootstrap") and test["scored_images"] >= 1 and test["dice"]["value"] > 0.8


def test_key_points_within_three_pixels_on_phantoms(keypoints_run):
    test = json.loads((keypoints_run / "run.json").read_text())["stage_evaluations"]["test"]
    assert test["input_size_px"] == 64 and test["error_px"]["value"] < 3.0, test
    assert set(test["error_px_by_keypoint"]) == {"middle_finger_tip", "thumb_tip", "capitate_centre"}


@pytest.mark.parametrize("stage, region", AGE_NETWORKS)
def test_each_age_network_learns(age_runs, phantoms, stage, region):
    history = pd.read_csv(age_runs[(stage, region)] / "metrics.csv")
    assert len(history) == AGE_EPOCHS[stage]
    baseline = mean_predictor_mae(phantoms)
    assert history["val_mae"].min() <= 0.5 * baseline, (stage, region, history["val_mae"].round(1).tolist(), baseline)
    record = json.loads((age_runs[(stage, region)] / "run.json").read_text())
    ev = record["evaluations"]["test"]
    assert ev["images"] == 150 and record["variant"] == f"small-{stage}-{region}"
    if stage == "classify":
        assert set(ev["estimates"]) == {"expected", "argmax"} and ev["primary_estimate"] == "expected"


def test_ensemble_and_region_table(age_runs):
    from reproductions.iglovikov18 import regions
    runs_dir = age_runs[("regress", "hand")].parent
    out = runs_dir / "ensemble"
    _run(["evaluate", "--stage", "ensemble", "--small", "--runs", *[str(r) for r in age_runs.values()], "--out", str(out)])
    record = json.loads((out / "run.json").read_text())
    assert record["variant"] == "small-ensemble" and record["evaluations"]["test"]["images"] == 150
    preds = pd.read_csv(out / "test" / "member_predictions.csv")
    members = [c for c in preds.columns if c not in ("id", "boneage_true", "male", "boneage_pred")]
    assert len(members) == len(AGE_NETWORKS)
    np.testing.assert_allclose(preds[members].mean(axis=1), preds["boneage_pred"], rtol=1e-9)
    # The region table, from these run records: one row per network and the ensemble's.
    collected = regions.collect(runs_dir.parent)
    cells = collected[("phantoms/small", "small", "test")]
    assert set(cells) == set(AGE_NETWORKS) | {("ensemble", None)}
    ensemble_mae = cells[("ensemble", None)]["all"]["value"]
    assert ensemble_mae == pytest.approx(record["evaluations"]["test"]["estimates"]["ensemble"]["mae"]["value"])
    table = regions.render(collected, {})
    assert table.count("| carpal bones |") == 2 and "| ensemble (mean of the runs above) |" in table


def test_register_writes_a_folder_dataset_the_age_stage_reads(segment_run, keypoints_run, data_dir, tmp_path):
    from common import data, pipeline
    from reproductions.iglovikov18 import config as ig_config
    from reproductions.iglovikov18 import preprocessing as pp
    from reproductions.iglovikov18 import stages
    out = tmp_path / "phantoms-registered"
    _run(["register", "--small", "--data", STAGE_DATA, "--data-dir", str(data_dir), "--segment-run", str(segment_run),
          "--keypoints-run", str(keypoints_run), "--out", str(out), "--limit", "6"])
    handle = data.resolve(f"folder:{out}", data_dir=data_dir, log=lambda *_: None)
    assert stages.is_registered(handle) and handle.splits == {"train": 6, "validation": 6, "test": 6}
    source = data.resolve(STAGE_DATA, data_dir=data_dir, log=lambda *_: None)
    assert handle.derived_from() == {"source_dataset": source.name, "source_fingerprint": source.fingerprint()}
    config = ig_config.get_config("small-regress-carpal")
    example = next(iter(pipeline.read_split(handle, "train").map(pipeline.decode)))
    assert example["image"].shape[:2] == (166, 128)   # stored at twice the small canvas (83 x 64)
    assert pp.make_age_preprocess(config, training=False)(example)["image"].shape[:2] == (22, 26)


def test_predict_runs_the_whole_chain_on_a_real_radiograph(segment_run, keypoints_run, age_runs, shared_data,
                                                           tmp_path):
    image = shared_data / "rsna-sample" / "images" / "1377.png"
    csv = tmp_path / "pred.csv"
    ages = [str(age_runs[("regress", "carpal")]), str(age_runs[("classify", "metacarpal")])]
    cmd = [sys.executable, "-m", "reproductions.iglovikov18", "predict", str(image), "--sex", "F",
           "--segment-run", str(segment_run), "--keypoints-run", str(keypoints_run), "--age-runs", *ages,
           "--output-csv", str(csv), "--canvas-dir", str(tmp_path / "canvas")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    row = pd.read_csv(csv).iloc[0]
    assert 0 <= row["boneage_months"] <= 240 and row["male"] == 0
    assert row["boneage_months"] == pytest.approx((row["boneage_months_small-regress-carpal"]
                                                   + row["boneage_months_small-classify-metacarpal"]) / 2, abs=0.02)
    h, w = 512, 379
    for name in ("middle_finger_tip", "thumb_tip", "capitate_centre"):
        assert -0.25 * w <= row[f"{name}_x"] <= 1.25 * w and -0.25 * h <= row[f"{name}_y"] <= 1.25 * h
    assert (tmp_path / "canvas" / "1377_mask.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="sex"):    # no --sex: refused before any network is loaded
        main(["predict", str(image), "--segment-run", str(segment_run), "--keypoints-run", str(keypoints_run),
              "--age-runs", *ages])
    with pytest.raises(SystemExit, match="expected an iglovikov18 run of stage segment"):
        main(["predict", str(image), "--sex", "M", "--segment-run", str(keypoints_run), "--keypoints-run",
              str(keypoints_run), "--age-runs", *ages])
