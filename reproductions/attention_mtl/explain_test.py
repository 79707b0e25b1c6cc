"""evaluate's attention read-out (sheet, regions table) and predict's overlays, on tiny phantoms and a tiny model."""
import json

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import data, pipeline
from common import phantoms
from common.phantoms import REGION_NAMES
from reproductions.attention_mtl import chain_regions, explain
from reproductions.attention_mtl import task as attn_task
from reproductions.attention_mtl.config import get_config


def _config(pooling="attention"):
    config = get_config("small")  # 64 px
    config.model.backbone, config.model.pooling, config.train.batch_size = "tiny_cnn", pooling, 8
    return config


def _model(config):
    keras.utils.set_random_seed(0)
    return attn_task.build_model(config)


def _predictions(handle, split="test"):
    """What evaluate hands extra_metrics: id, reference and predicted age, sex."""
    rows = [(e["id"].decode(), float(e["boneage_months"]), int(e["male"]))
            for e in pipeline.read_split(handle, split).as_numpy_iterator()]
    ids, ages, males = zip(*rows)
    ages = np.array(ages)
    return pd.DataFrame({"id": ids, "boneage_true": ages, "boneage_pred": ages + 5.0, "male": males})


def _valid_png(path):
    with Image.open(path) as image:
        image.verify()
    return True


def test_sheet_examples_are_per_band_by_reference_age_only():
    ages = [5, 10, 15, 30, 40, 50, 60, 70, 200]  # 3 in 0-2 y, 5 in 2-6 y, none in 6-14 y, 1 in 14-19 y
    df = pd.DataFrame({"id": [f"i{k}" for k in range(9)], "boneage_true": ages, "boneage_pred": 0.0, "male": 0})
    chosen = explain.sheet_examples(df)
    assert chosen == [("0-2", "i0"), ("0-2", "i2"), ("2-6", "i4"), ("2-6", "i6"), ("14-19", "i8")]
    shuffled = df.sample(frac=1.0, random_state=0).assign(boneage_pred=np.arange(9.0))
    assert explain.sheet_examples(shuffled) == chosen  # neither row order nor the predictions matter
    assert len(explain.sheet_examples(df, per_band=1)) == 3


def test_phantom_regions_match_the_stored_mask(tiny_phantoms):
    example = next(pipeline.read_split(tiny_phantoms, "test").map(pipeline.decode).as_numpy_iterator())
    regions = explain.phantom_regions(example["id"].decode(), example["image"].shape[:2], 96)
    stored = explain.letterbox_labels(example["mask"][..., 0], 96)
    assert regions.shape == (96, 96)
    np.testing.assert_array_equal(regions > 0, stored > 127)
    assert explain.phantom_regions("1234.png", (64, 64), 96) is None


def test_evaluate_writes_the_sheet_and_the_region_table(tiny_phantoms, tmp_path):
    config = _config()
    predictions = _predictions(tiny_phantoms)
    values, text = explain.evaluate_attention(_model(config), config, tiny_phantoms, "test", predictions, tmp_path / "test",
                                              to_model_io=attn_task.to_model_io, title="tiny", log=lambda *_: None)
    assert _valid_png(tmp_path / "test" / explain.SHEET)
    assert (tmp_path / "test" / explain.REGIONS_MD).read_text() == text
    table = pd.read_csv(tmp_path / "test" / explain.REGIONS_CSV)
    assert len(table) == len(predictions) == 16 and set(table["id"]) == set(predictions["id"])
    regions = table[[f"region_{n}" for n in REGION_NAMES]]
    np.testing.assert_allclose(regions.sum(axis=1), table["in_hand_mask"], atol=1e-9)  # the regions tile the mask
    assert (table["in_hand_mask"] <= table["on_radiograph"] + 1e-9).all() and (table["on_radiograph"] <= 1 + 1e-9).all()
    assert (regions > 0).all().all()  # an untrained map is spread: some mass everywhere
    areas = table[[f"area_region_{n}" for n in REGION_NAMES]]
    np.testing.assert_allclose(areas.sum(axis=1), table["area_in_hand_mask"], atol=1e-9)
    assert (table["area_on_radiograph"] == 1.0).all()  # square phantoms: no padding
    assert f"({100 * values['all']['area_in_hand_mask']:.1f} %)" in text  # each share beside its area's
    assert values["images"] == 16 and "phantoms" in values["regions_from"]
    assert sum(m["images"] for m in values["by_age_band"].values()) == 16
    assert "| all | 16 |" in text and "carpals" in text and "distal phalanges" in text
    json.dumps(values)  # goes into metrics.json as it is


def _write_radiograph_folder(root, n_hands, n_blank):
    """A folder dataset of phantom hands saved as plain PNGs (no masks, like the RSNA folders) and blank films."""
    import cv2
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(n_hands + n_blank):
        image = np.zeros((64, 48), np.uint8)
        if i < n_hands:
            image[:] = phantoms.sample_phantom(i, 3, 64).image[:, 8:56]  # portrait: the letterbox pads it
        cv2.imwrite(str(root / "images" / f"{1000 + i}.png"), image)
        rows.append({"id": str(1000 + i), "boneage": float(10 + 9 * i), "male": bool(i % 2)})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


def test_a_folder_without_masks_gets_the_iglovikov18_chains_regions(tmp_path):
    root = _write_radiograph_folder(tmp_path / "src", n_hands=20, n_blank=4)
    handle = data.resolve(f"folder:{root}", data_dir=tmp_path / "ds", log=lambda *_: None)
    split = max(handle.splits, key=handle.splits.get)
    config = _config()
    predictions = _predictions(handle, split)
    values, text = explain.evaluate_attention(_model(config), config, handle, split, predictions,
                                              tmp_path / "out", to_model_io=attn_task.to_model_io, log=lambda *_: None)
    table = pd.read_csv(tmp_path / "out" / explain.REGIONS_CSV)
    blank = table["id"].astype(int) >= 1020
    assert blank.any() and (~blank).any()
    regions = [f"region_{n}" for n in chain_regions.CHAIN_REGIONS]
    assert values["columns"] == ["on_radiograph", "in_hand_mask", "off_hand", *regions, "spread", "centre_x", "centre_y"]
    assert table.loc[blank, ["in_hand_mask", *regions]].isna().all().all()  # a blank film: no hand, no regions
    hands = table[~blank]
    assert hands[["in_hand_mask", *regions]].notna().all().all()
    for r in regions:
        assert (hands[r] <= hands["in_hand_mask"] + 1e-9).all() and (hands[r] > 0).all()
    np.testing.assert_allclose(hands["off_hand"] + hands["in_hand_mask"], hands["on_radiograph"], atol=1e-9)
    assert (table["on_radiograph"] < 1.0).all()  # portrait radiographs: some of the attention is on the padding
    assert f"{(~blank).sum()} of {len(table)} images had key points" in values["regions_from"]
    assert "iglovikov18" in text and "carpal box (iglovikov18)" in text and "No mass per hand region" not in text
    assert _valid_png(tmp_path / "out" / explain.SHEET)
    json.dumps(values)


def test_a_folder_the_chain_finds_no_hand_in_gets_what_needs_no_anatomy(tmp_path):
    root = _write_radiograph_folder(tmp_path / "src", n_hands=0, n_blank=24)
    handle = data.resolve(f"folder:{root}", data_dir=tmp_path / "ds", log=lambda *_: None)
    split = max(handle.splits, key=handle.splits.get)
    config = _config()
    values, text = explain.evaluate_attention(_model(config), config, handle, split, _predictions(handle, split),
                                              tmp_path / "out", to_model_io=attn_task.to_model_io, log=lambda *_: None)
    assert values["columns"] == ["on_radiograph", "spread", "centre_x", "centre_y"]
    assert "No mass per hand region" in text and "0 of" in values["regions_from"]


def test_no_read_out_without_attention_pooling(tiny_phantoms, tmp_path):
    config = _config("gap")
    assert explain.evaluate_attention(_model(config), config, tiny_phantoms, "test", _predictions(tiny_phantoms),
                                      tmp_path, to_model_io=attn_task.to_model_io) is None
    assert not list(tmp_path.iterdir())


def test_extra_metrics_draws_with_the_model_evaluate_hands_it(tiny_phantoms, tmp_path):
    config, run_dir = _config(), tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"dataset": {"name": tiny_phantoms.name}}))
    predictions = _predictions(tiny_phantoms).assign(**{c: np.nan for c in attn_task.TASK.extra_columns})
    assert set(attn_task.extra_metrics(config, run_dir, "test", predictions)) == {"uncertainty"}  # no model: no maps
    sections = attn_task.extra_metrics(config, run_dir, "test", predictions, model=_model(config), handle=tiny_phantoms,
                                       out_dir=run_dir / "test-on-x", log=lambda *_: None)  # as common.train.evaluate
    assert set(sections) == {"uncertainty", "attention"}
    assert (run_dir / "test-on-x" / explain.SHEET).is_file() and (run_dir / "test-on-x" / explain.REGIONS_MD).is_file()
    assert not (run_dir / "test").exists()  # the folder evaluate names, none of its own


def test_predict_overlays_one_png_per_radiograph(tmp_path):
    config = _config()
    rng = np.random.default_rng(0)
    records = [(str(tmp_path / "a" / "hand.png"), rng.integers(0, 256, (80, 60), dtype=np.uint8), 1),
               (str(tmp_path / "b" / "hand.png"), rng.integers(0, 256, (50, 70), dtype=np.uint8), 0),
               (str(tmp_path / "x.dcm"), rng.integers(0, 256, (64, 64), dtype=np.uint8), 0)]
    table = pd.DataFrame({"file": [r[0] for r in records], "boneage_months": [100.0, 50.0, 20.0],
                          "lower_90": [90.0, np.nan, 10.0], "upper_90": [110.0, np.nan, 30.0]})
    lines = []
    written = attn_task.explain_predictions(_model(config), config, records, table, tmp_path / "out", log=lines.append)
    assert lines == [f"Wrote 3 attention overlays to {tmp_path / 'out'}"]
    assert [p.name for p in written] == ["hand_attention.png", "hand-2_attention.png", "x_attention.png"]
    assert all(_valid_png(p) for p in written)
    with pytest.raises(ValueError, match="no attention pooling"):
        explain.write_explanations(_model(_config("gap")), _config("gap"), records, tmp_path / "gap",
                                   to_model_io=attn_task.to_model_io)
