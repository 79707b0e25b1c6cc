"""The folder builder: header variants, every bad input, round trip, splits, skip report, rebuilds."""
import os

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


def test_another_split_column_is_another_dataset_and_a_missing_one_is_an_error(make_folder, tmp_path):
    """rsna-sample names the RSNA split of each image in `source_split`: split that way, it is a
    second dataset beside the id-hash one, never a rebuild of it."""
    rows = [dict(r, source_split="test" if i < 5 else "train") for i, r in enumerate(ROWS)]
    src = make_folder(rows)
    by_hash = build(src, tmp_path / "ds")
    by_column = build(src, tmp_path / "ds", split_column="source_split")
    assert by_column.name == by_hash.name + "-by-source_split"
    assert by_column.splits == {"train": 19, "test": 5} and sum(by_hash.splits.values()) == 24
    assert build(src, tmp_path / "ds").fingerprint() == by_hash.fingerprint()  # still there, not rebuilt
    with pytest.raises(DataError, match=r"has no column 'origin' \(--split-column\)"):
        build(src, tmp_path / "ds", split_column="origin")


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


# --- a built dataset is reused only while its inputs are unchanged ----------------------------

def build_logged(src, data_dir, **kwargs):
    lines = []
    handle = data.resolve(f"folder:{src}", data_dir=data_dir, log=lines.append, **kwargs)
    return handle, " ".join(lines)


def all_ids(handle):
    return sorted(e["id"].numpy().decode() for s in handle.splits for e in pipeline.read_split(handle, s))


def test_a_changed_labels_file_rebuilds_saying_why(make_folder, tmp_path):
    src = make_folder(ROWS)
    build(src, tmp_path / "ds")
    df = pd.read_csv(src / "labels.csv", dtype=str)
    df.loc[0, "boneage"] = "99.0"
    df.to_csv(src / "labels.csv", index=False)
    handle, log = build_logged(src, tmp_path / "ds")
    assert "Rebuilding" in log and "labels.csv changed" in log
    ages = {e["id"].numpy().decode(): e["boneage_months"].numpy()
            for s in handle.splits for e in pipeline.read_split(handle, s)}
    assert ages[ROWS[0]["id"]] == pytest.approx(99.0)
    _, log = build_logged(src, tmp_path / "ds")
    assert "Rebuilding" not in log  # unchanged inputs: reused


def test_images_added_after_a_skip_bad_build_are_picked_up(make_folder, tmp_path):
    """The issue's case: --skip-bad while images were missing, then the images are added."""
    src = make_folder(ROWS)
    missing = [ROWS[1]["id"], ROWS[2]["id"], ROWS[3]["id"]]
    saved = {i: (src / "images" / f"{i}.png").read_bytes() for i in missing}
    for i in missing:
        (src / "images" / f"{i}.png").unlink()
    first = build(src, tmp_path / "ds", skip_bad=True)
    assert sum(first.splits.values()) == len(ROWS) - 3
    for i, png in saved.items():
        (src / "images" / f"{i}.png").write_bytes(png)
    handle, log = build_logged(src, tmp_path / "ds", skip_bad=True)
    assert "3 image file(s) changed/added/removed: 3 added" in log
    assert all_ids(handle) == sorted(r["id"] for r in ROWS)
    assert not (handle.version_dir / "skipped.csv").exists()
    assert not list(handle.version_dir.parent.glob("previous-*"))  # the aside copy is gone


def test_a_replaced_image_rebuilds_with_its_new_pixels(make_folder, tmp_path):
    src = make_folder(ROWS)
    before = build(src, tmp_path / "ds")
    path = src / "images" / f"{ROWS[0]['id']}.png"
    new = np.full((40, 30), 7, np.uint8)
    mtime = path.stat().st_mtime_ns
    import cv2
    cv2.imwrite(str(path), new)
    # Filesystems with coarse timestamps could give the new file the same mtime: make it later.
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))
    handle, log = build_logged(src, tmp_path / "ds")
    assert "1 changed (" + path.name in log
    assert handle.fingerprint() != before.fingerprint()
    stored = {e["id"].numpy().decode(): e["image"].numpy()[..., 0]
              for s in handle.splits for e in pipeline.read_split(handle, s).map(pipeline.decode)}
    np.testing.assert_array_equal(stored[ROWS[0]["id"]], new)


def test_build_options_are_part_of_the_inputs(make_folder, tmp_path):
    src = make_folder(ROWS)
    build(src, tmp_path / "ds")
    _, log = build_logged(src, tmp_path / "ds", skip_bad=True)
    assert "build options changed: skip_bad False -> True" in log
    # Commands without --skip-bad (train, evaluate: skip_bad=None) keep what prepare chose.
    _, log = build_logged(src, tmp_path / "ds")
    assert "Rebuilding" not in log


def test_a_failed_rebuild_keeps_the_previous_build(make_folder, tmp_path):
    src = make_folder(ROWS)
    before = build(src, tmp_path / "ds")
    (src / "images" / f"{ROWS[0]['id']}.png").write_bytes(b"not a png any more")
    with pytest.raises(DataError, match="image unreadable"):
        build(src, tmp_path / "ds")
    kept = data.resolve("folder/src", data_dir=tmp_path / "ds")
    assert kept.fingerprint() == before.fingerprint() and kept.version_dir == before.version_dir
    assert sorted(p.name for p in kept.version_dir.parent.iterdir()) == [kept.version_dir.name]


def test_a_rebuild_killed_midway_puts_the_previous_build_back(make_folder, tmp_path):
    src = make_folder(ROWS)
    before = build(src, tmp_path / "ds")
    # What a kill -9 after moving the previous build aside and before the new one completes leaves.
    aside = data._aside(before.version_dir)
    before.version_dir.rename(aside)
    (before.version_dir.parent / "incomplete.XYZ_1.0.0").mkdir()
    handle, log = build_logged(src, tmp_path / "ds")
    assert "Build" not in log and handle.fingerprint() == before.fingerprint()
    assert not aside.exists()


def test_two_folders_with_one_name_are_refused(make_folder, tmp_path):
    a = make_folder(ROWS, name="a/src")
    b = make_folder(ROWS[:5], name="b/src")
    build(a, tmp_path / "ds")
    with pytest.raises(DataError, match="two folders share the name 'src'"):
        build(b, tmp_path / "ds")


# --- one validation pass, empty splits, empty datasets ---------------------------------------

def test_every_offender_of_every_kind_is_listed_at_once(make_folder, tmp_path):
    rows = [dict(r, split=["train", "validation", "test"][i % 3]) for i, r in enumerate(ROWS)]
    src = make_folder(rows)
    df = pd.read_csv(src / "labels.csv", dtype=str)
    df.loc[0, "boneage"] = "300"      # a bad label row (train)
    df.loc[1, "male"] = "X"           # another (validation)
    df.to_csv(src / "labels.csv", index=False)
    (src / "images" / f"{rows[3]['id']}.png").unlink()                    # missing (train)
    (src / "images" / f"{rows[4]['id']}.png").write_bytes(b"garbage")     # undecodable (validation)
    (src / "images" / f"{rows[5]['id']}.png").write_bytes(b"\x89PNG\r\n")  # undecodable (test)
    with pytest.raises(DataError) as e:
        build(src, tmp_path / "ds")
    msg = str(e.value)
    assert msg.startswith("5 problem(s)")
    assert f"(id {rows[0]['id']}): bone age 300" in msg and f"(id {rows[1]['id']}): unknown sex value 'X'" in msg
    assert f"(id {rows[3]['id']}): image missing" in msg
    assert f"(id {rows[4]['id']}): image unreadable" in msg and f"(id {rows[5]['id']}): image unreadable" in msg
    assert no_dataset_written(tmp_path / "ds")

    handle = build(src, tmp_path / "ds", skip_bad=True)
    report = pd.read_csv(handle.version_dir / "skipped.csv", dtype=str)
    assert sorted(report["id"]) == sorted(r["id"] for r in rows[:2] + rows[3:6])
    assert sum(handle.splits.values()) == len(rows) - 5


def test_skip_bad_that_empties_a_split_stops_before_writing(make_folder, tmp_path):
    rows = [dict(r, split="test" if i < 3 else "train") for i, r in enumerate(ROWS)]
    src = make_folder(rows)
    for r in rows[:3]:
        (src / "images" / f"{r['id']}.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"would leave split\(s\) 'test' \(all 3 of its rows are bad\) empty") as e:
        build(src, tmp_path / "ds", skip_bad=True)
    assert all(f"(id {r['id']}): image unreadable" in str(e.value) for r in rows[:3])
    assert no_dataset_written(tmp_path / "ds")


def test_a_labels_file_without_rows_is_an_error(make_folder, tmp_path):
    src = make_folder(ROWS[:2])
    (src / "labels.csv").write_text("id,boneage,male\n")
    with pytest.raises(LabelError, match="the labels file has no rows"):
        build(src, tmp_path / "ds")
    assert no_dataset_written(tmp_path / "ds")


def test_skip_bad_leaving_no_rows_at_all_is_an_error(make_folder, tmp_path):
    src = make_folder(ROWS[:4])
    for r in ROWS[:4]:
        (src / "images" / f"{r['id']}.png").unlink()
    with pytest.raises(DataError, match="nothing to build"):
        build(src, tmp_path / "ds", skip_bad=True)
    assert no_dataset_written(tmp_path / "ds")
