"""The rsna builder on fake downloads in the official and the Kaggle layouts."""
import os
import warnings

import cv2
import numpy as np
import pandas as pd
import pytest

from common import data, pipeline, splits
from common.datasets import DataError
from common.datasets.rsna import IntegerTestLabelsWarning

TRAIN_IDS = [str(1377 + i) for i in range(40)]
VAL_IDS = [str(1500 + i) for i in range(6)]
TEST_IDS = [str(4360 + i) for i in range(5)]  # the challenge's test ids start at 4360


def images(folder, ids):
    folder.mkdir(parents=True, exist_ok=True)
    for i in ids:
        cv2.imwrite(str(folder / f"{i}.png"), np.full((30, 20), int(i) % 251, np.uint8))


def official_layout(root, test_ages=None, with_validation_images=True):
    images(root / "boneage-training-dataset", TRAIN_IDS)
    pd.DataFrame({"id": TRAIN_IDS, "boneage": [12 + i for i in range(len(TRAIN_IDS))],
                  "male": ["True", "False"] * (len(TRAIN_IDS) // 2)}).to_csv(
        root / "boneage-training-dataset.csv", index=False)
    val = root / "Bone Age Validation Set"
    if with_validation_images:
        images(val / "boneage-validation-dataset-1", VAL_IDS[:3])
        images(val / "boneage-validation-dataset-2", VAL_IDS[3:])
    val.mkdir(exist_ok=True)
    pd.DataFrame({"Image ID": VAL_IDS, "male": ["TRUE", "FALSE"] * 3,
                  "Bone Age (months)": [30, 60, 90, 120, 150, 180]}).to_csv(val / "Validation Dataset.csv", index=False)
    test = root / "Bone Age Test Set"
    images(test / "Test Set Images", TEST_IDS)
    ages = test_ages or [168.93, 169.65, 73.26, 152.86, 100.5]
    pd.DataFrame({"Case ID": [int(i) for i in TEST_IDS], "Sex": ["M", "F", "M", "F", "M"],
                  "Ground truth bone age (months)": ages}).to_excel(test / "Bone age ground truth.xlsx", index=False)
    return root


def build(root, data_dir):
    return data.resolve(f"rsna:{root}", data_dir=data_dir, log=lambda *_: None)


def ids_of(handle, split):
    return sorted(e["id"].numpy().decode() for e in pipeline.read_split(handle, split))


def test_official_layout_keeps_challenge_splits(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntegerTestLabelsWarning)
        handle = build(official_layout(tmp_path / "dl"), tmp_path / "ds")
    assert handle.splits == {"train": 40, "validation": 6, "test": 5}
    assert ids_of(handle, "test") == TEST_IDS and ids_of(handle, "validation") == VAL_IDS
    assert handle.metadata["validation_source"] == "official challenge validation set"
    assert handle.metadata["test_reference"].startswith("continuous")
    test = {e["id"].numpy().decode(): e for e in pipeline.read_split(handle, "test")}
    assert test["4360"]["boneage_months"].numpy() == pytest.approx(168.93, abs=1e-4)
    assert test["4361"]["male"].numpy() == 0


def test_missing_validation_images_carve_validation_from_train(tmp_path):
    handle = build(official_layout(tmp_path / "dl", with_validation_images=False), tmp_path / "ds")
    carved = sorted(i for i in TRAIN_IDS if splits.carved_validation(i))
    assert carved and ids_of(handle, "validation") == carved
    assert set(ids_of(handle, "train")) == set(TRAIN_IDS) - set(carved)
    assert "carved" in handle.metadata["validation_source"]


def test_integer_test_labels_warn(tmp_path):
    with pytest.warns(IntegerTestLabelsWarning, match="six reviewers"):
        handle = build(official_layout(tmp_path / "dl", test_ages=[168, 170, 73, 153, 100]), tmp_path / "ds")
    assert "NOT" in handle.metadata["test_reference"]


def test_kaggle_layout_without_test_ages(tmp_path):
    root = tmp_path / "kaggle"
    images(root / "boneage-training-dataset" / "boneage-training-dataset", TRAIN_IDS)
    pd.DataFrame({"id": TRAIN_IDS, "boneage": [100] * 40, "male": [True, False] * 20}).to_csv(
        root / "boneage-training-dataset.csv", index=False)
    images(root / "boneage-test-dataset" / "boneage-test-dataset", TEST_IDS)
    pd.DataFrame({"Case ID": TEST_IDS, "Sex": ["M"] * 5}).to_csv(root / "boneage-test-dataset.csv", index=False)
    with pytest.warns(UserWarning, match="no bone ages"):
        handle = build(root, tmp_path / "ds")
    assert set(handle.splits) == {"train", "validation"}
    assert sum(handle.splits.values()) == 40


def test_missing_training_images_listed_and_nothing_written(tmp_path):
    root = official_layout(tmp_path / "dl")
    for i in TRAIN_IDS[:2]:
        (root / "boneage-training-dataset" / f"{i}.png").unlink()
    with pytest.raises(DataError) as e:
        build(root, tmp_path / "ds")
    assert all(f"(id {i}): image missing" in str(e.value) for i in TRAIN_IDS[:2])
    assert not list((tmp_path / "ds").rglob("*.tfrecord*"))


def test_official_test_ids_land_in_test_with_real_label_files(tmp_path, shared_data):
    """The real label files (all 14,236 rows) against a few images per split."""
    labels = shared_data / "rsna-labels"
    root = tmp_path / "dl"
    root.mkdir()
    for name in ("boneage-training-dataset.csv", "boneage-test-dataset-labels.csv"):
        (root / name).write_bytes((labels / name).read_bytes())
    train = pd.read_csv(labels / "boneage-training-dataset.csv", dtype=str)
    test = pd.read_csv(labels / "boneage-test-dataset-labels.csv", dtype=str)
    # Keep the label files whole but only a sample of images: --skip-bad leaves out the rest.
    images(root / "train", train["id"][:30])
    images(root / "test", test["id"][:10])
    handle = data.resolve(f"rsna:{root}", data_dir=tmp_path / "ds", skip_bad=True, log=lambda *_: None)
    assert ids_of(handle, "test") == sorted(test["id"][:10])
    assert handle.metadata["test_reference"].startswith("continuous")
    assert not set(ids_of(handle, "train")) & set(test["id"])
    assert len(pd.read_csv(handle.version_dir / "skipped.csv")) == len(train) + len(test) - 40


def test_a_missing_download_folder_is_named(tmp_path):
    with pytest.raises(DataError, match=f"no such directory {tmp_path / 'nonexistent'}"):
        build(tmp_path / "nonexistent", tmp_path / "ds")


def test_a_built_dataset_opens_by_its_name_and_is_never_built_by_it(tmp_path):
    """Run records keep "rsna/default": `evaluate --out RUN` without --data resolves that name."""
    with pytest.raises(DataError, match=f"No rsna dataset 'rsna/default' built in {tmp_path / 'ds'}; build it first "
                                        "with --data rsna:PATH"):
        data.resolve("rsna/default", data_dir=tmp_path / "ds")
    handle = build(official_layout(tmp_path / "dl"), tmp_path / "ds")
    named = data.resolve("rsna/default", data_dir=tmp_path / "ds", log=lambda *_: None)
    assert named.name == handle.name == "rsna/default" and named.fingerprint() == handle.fingerprint()
    with pytest.raises(DataError, match="No rsna dataset 'rsna/max256'"):  # another config: not built
        data.resolve("rsna/max256", data_dir=tmp_path / "ds")


def test_every_offender_across_label_files_and_splits_at_once(tmp_path):
    root = official_layout(tmp_path / "dl")
    train_csv = root / "boneage-training-dataset.csv"
    df = pd.read_csv(train_csv, dtype=str)
    df.loc[0, "boneage"] = "-4"                                                         # bad label row
    df.to_csv(train_csv, index=False)
    (root / "Bone Age Test Set" / "Test Set Images" / f"{TEST_IDS[0]}.png").unlink()   # missing
    (root / "Bone Age Validation Set" / "boneage-validation-dataset-1" / f"{VAL_IDS[0]}.png").write_bytes(b"x")
    with pytest.raises(DataError) as e:
        build(root, tmp_path / "ds")
    msg = str(e.value)
    assert msg.startswith("3 problem(s)")
    assert f"(id {TRAIN_IDS[0]}): bone age -4" in msg
    assert f"(id {TEST_IDS[0]}): image missing" in msg and f"(id {VAL_IDS[0]}): image unreadable" in msg
    assert not list((tmp_path / "ds").rglob("*.tfrecord*"))


def test_a_changed_download_rebuilds_saying_why(tmp_path):
    root = official_layout(tmp_path / "dl")
    before = build(root, tmp_path / "ds")
    images(root / "boneage-training-dataset", TRAIN_IDS[:1])  # replaced: a new file, a new mtime
    path = root / "boneage-training-dataset" / f"{TRAIN_IDS[0]}.png"
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    lines = []
    handle = data.resolve(f"rsna:{root}", data_dir=tmp_path / "ds", log=lines.append)
    assert "1 changed (boneage-training-dataset/1377.png)" in " ".join(lines)
    assert handle.splits == before.splits
    lines.clear()
    data.resolve(f"rsna:{root}", data_dir=tmp_path / "ds", log=lines.append)
    assert not lines  # unchanged: reused without a word
