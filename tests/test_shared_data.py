"""The real data in ../shared/data builds into folder datasets that match its labels.csv."""
import numpy as np
import pandas as pd
import pytest

from common import data, pipeline


def labels_by_id(folder):
    return pd.read_csv(folder / "labels.csv", dtype={"id": str}).set_index("id")


def read_all(handle):
    rows = []
    for split in handle.splits:
        for e in pipeline.read_split(handle, split):
            rows.append({"id": e["id"].numpy().decode(), "boneage": float(e["boneage_months"]),
                         "male": int(e["male"]), "split": split})
    return pd.DataFrame(rows).set_index("id")


@pytest.mark.parametrize("name, n", [("rsna-thumbs100", 10089), ("rsna-sample", 61)])
def test_real_folders_build_with_matching_counts_and_labels(shared_data, data_dir, name, n):
    handle = data.resolve(f"folder:{shared_data / name}", data_dir=data_dir, log=lambda *_: None)
    expected = labels_by_id(shared_data / name)
    got = read_all(handle)
    assert len(expected) == n and len(got) == n and sum(handle.splits.values()) == n
    assert set(got.index) == set(expected.index)
    got = got.loc[expected.index]
    np.testing.assert_allclose(got["boneage"], expected["boneage"], atol=1e-4)
    assert (got["male"] == expected["male"].astype(int)).all()
    assert got["boneage"].mean() == pytest.approx(expected["boneage"].mean(), abs=1e-3)
    assert got["male"].mean() == pytest.approx(expected["male"].mean())
    # The hash rule gives every split a share close to 80 / 10 / 10 on the big set.
    if n > 1000:
        shares = got["split"].value_counts(normalize=True)
        assert abs(shares["test"] - 0.1) < 0.02 and abs(shares["validation"] - 0.1) < 0.02


def test_sample_radiographs_keep_their_size_below_the_cap(shared_data, data_dir):
    handle = data.resolve(f"folder:{shared_data / 'rsna-sample'}", data_dir=data_dir, log=lambda *_: None)
    manifest = pd.read_csv(shared_data / "rsna-sample" / "manifest.csv", dtype={"id": str}).set_index("id")
    for split in handle.splits:
        for e in pipeline.read_split(handle, split).map(pipeline.decode).take(5):
            h, w, _ = e["image"].shape
            row = manifest.loc[e["id"].numpy().decode()]
            assert (w, h) == (row["width"], row["height"])
