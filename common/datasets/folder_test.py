"""The folder builder: header variants, every bad input, round trip, splits, skip report."""
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from common import data, images, pipeline, splits
from common.datasets import DataError
from common.labels import LabelError

ROWS = [{"id": str(1000 + i), "boneage": float(10 + 7 * i), "male": bool(i % 2)} for i in range(24)]


def no_dataset_written(data_dir):
    """Nothing a reader could open, and no shard left behind."""
    leftovers = list(data_dir.rglob("*.tfrecord*")) + list(data_dir.rglob("dataset_info.json"))
    return not leftovers


def build(src, data_dir, **kwargs):
    return data.resolve(f"folder:{src}", data_dir=data_dir, log=lambda *_: None, **kwargs)


def test_round_trip_ids_labels_pixels(make_folder, tmp_path):
    src = make_folder(ROWS)
    handle = build(src, tmp_path / "ds")
    seen = {}
    for split in handle.splits:
        for ex in pipeline.read_split(handle, split).map(pipeline.decode):
            seen[ex["id"].numpy().decode()] = (split, ex)
    assert sorted(seen) == sorted(r["id"] for r in ROWS)
    for r in ROWS:
        split, ex = seen[r["id"]]
        assert split == splits.folder_split(r["id"])  # no split column: the hash rule
        assert ex["boneage_months"].numpy() == pytest.approx(r["boneage"])
        assert ex["male"].numpy() == int(r["male"])
        np.testing.assert_array_equal(ex["image"].numpy()[..., 0], images.read_image(src / "images" / f"{r['id']}.png"))
    assert handle.metadata["fingerprints"].keys() == handle.splits.keys()


def test_split_column_is_honoured_and_rebuild_is_stable(make_folder, tmp_path):
    rows = [dict(r, split=["train", "validation", "test"][i % 3]) for i, r in enumerate(ROWS)]
    src = make_folder(rows)
    a = build(src, tmp_path / "a")
    b = build(src, tmp_path / "b")
    assert a.splits == {"train": 8, "validation": 8, "test": 8}
    assert a.fingerprint() == b.fingerprint()
    ids = {s: {e["id"].numpy() for e in pipeline.read_split(a, s)} for s in a.splits}
    assert not (ids["train"] & ids["validation"]) and not (ids["train"] & ids["test"]) \
        and not (ids["validation"] & ids["test"])


def test_long_side_is_capped(make_folder, tmp_path):
    src = make_folder(ROWS[:3])
    handle = build(src, tmp_path / "ds", max_side=20)
    assert handle.name.endswith("-max20")
    for split in handle.splits:
        for ex in pipeline.read_split(handle, split).map(pipeline.decode):
            assert max(ex["image"].shape[:2]) == 20


@pytest.mark.parametrize("fmt", ["jpg", "dcm"])
def test_jpeg_and_dicom_sources(tmp_path, fmt):
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    pixels = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (20, 1))
    if fmt == "jpg":
        import cv2
        cv2.imwrite(str(src / "images" / "7.jpg"), pixels)
    else:
        write_dicom(src / "images" / "7.dcm", pixels.astype(np.uint16) * 16)
    pd.DataFrame({"id": ["7"], "boneage": [100], "male": [1], "split": ["test"]}).to_csv(src / "labels.csv", index=False)
    handle = build(src, tmp_path / "ds")
    ex = next(iter(pipeline.read_split(handle, "test").map(pipeline.decode)))
    stored = ex["image"].numpy()[..., 0]
    assert stored.shape == pixels.shape
    # JPEG: lossy, close to the source. DICOM: 12-bit values are stretched onto 0-255.
    expected = pixels.astype(float) if fmt == "jpg" else pixels * 255.0 / pixels.max()
    assert np.abs(stored - expected).max() <= (6 if fmt == "jpg" else 1)


def write_dicom(path, pixels):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PhotometricInterpretation = "DX", "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 12, 11, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("mutate, expected", [
    (lambda df: df.drop(columns=["male"]), "missing column"),
    (lambda df: df.assign(boneage=[300.0] + list(df["boneage"][1:])), "outside 0-240"),
    (lambda df: df.assign(male=["X"] + list(df["male"][1:])), "unknown sex value 'X'"),
    (lambda df: pd.concat([df, df.iloc[:1]]), "duplicate id"),
    (lambda df: pd.concat([df, pd.DataFrame([{"id": "9999", "boneage": 5.0, "male": True}])]), "image missing"),
])
def test_bad_labels_fail_with_message_and_write_nothing(make_folder, tmp_path, mutate, expected):
    src = make_folder(ROWS)
    mutate(pd.read_csv(src / "labels.csv", dtype=str)).to_csv(src / "labels.csv", index=False)
    with pytest.raises((LabelError, DataError), match=expected) as e:
        build(src, tmp_path / "ds")
    assert "labels.csv" in str(e.value)
    assert no_dataset_written(tmp_path / "ds")


def test_corrupt_image_fails_listing_it_then_skip_bad_reports(make_folder, tmp_path):
    src = make_folder(ROWS)
    bad = [r["id"] for r in ROWS if splits.folder_split(r["id"]) == "train"][:2]
    for i in bad:
        (src / "images" / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError) as e:
        build(src, tmp_path / "ds")
    for i in bad:
        assert f"(id {i})" in str(e.value) and "image unreadable" in str(e.value)
    assert no_dataset_written(tmp_path / "ds")

    handle = build(src, tmp_path / "ds", skip_bad=True)
    assert sum(handle.splits.values()) == len(ROWS) - len(bad)
    report = pd.read_csv(handle.version_dir / "skipped.csv", dtype=str)
    assert sorted(report["id"]) == sorted(bad)


def test_interrupted_build_leaves_nothing_a_reader_sees_and_reruns(make_folder, tmp_path, monkeypatch):
    src = make_folder(ROWS)
    from common.datasets import base

    calls = {"n": 0}
    real = base._load_one

    def dies_midway(args):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of a build
        return real(args)

    monkeypatch.setattr(base, "_load_one", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        build(src, tmp_path / "ds")
    assert not list((tmp_path / "ds").rglob("dataset_info.json"))
    with pytest.raises(DataError, match="No folder dataset"):
        data.resolve("folder/src", data_dir=tmp_path / "ds")
    monkeypatch.setattr(base, "_load_one", real)
    handle = build(src, tmp_path / "ds")  # the same command again just works
    assert sum(handle.splits.values()) == len(ROWS)
    assert data.resolve("folder/src", data_dir=tmp_path / "ds").fingerprint() == handle.fingerprint()


def test_pipeline_reads_built_folder_in_tf_data(make_folder, tmp_path):
    handle = build(make_folder(ROWS), tmp_path / "ds")
    ds = pipeline.make_dataset(
        handle, "train", preprocess=lambda e: e,
        to_model_io=lambda b: (tf.cast(b["image"], tf.float32), b["boneage_months"]),
        batch_size=2, training=False)
    x, y = next(iter(ds))
    assert x.shape == (2, 40, 30, 1) and x.dtype == tf.float32 and y.dtype == tf.float32


def test_a_changed_labels_file_is_not_served_from_the_old_build(make_folder, tmp_path):
    src = make_folder(ROWS)
    build(src, tmp_path / "ds")
    df = pd.read_csv(src / "labels.csv")
    df.loc[0, "boneage"] = 99.0
    df.to_csv(src / "labels.csv", index=False)
    with pytest.raises(DataError, match="different labels.csv"):
        build(src, tmp_path / "ds")
