"""Tests of common/evaluation.py (small data, small bootstraps: the whole file runs in seconds)."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from common import evaluation as ev

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _frame(n=80, seed=1, noise=10.0):
    rng = np.random.default_rng(seed)
    true = rng.uniform(0, 228, n)
    return pd.DataFrame({
        "id": np.arange(1000 + n, 1000, -1),  # descending, so sorting by id is visible
        "boneage_true": true,
        "boneage_pred": true + rng.normal(1.0, noise, n),
        "male": rng.integers(0, 2, n),
    })


# ------------------------------------------------------------------------------ point metrics

def test_point_metrics_hand_computed():
    # errors (pred - true): +2, -4, +6, -13, +30
    true = [10.0, 20.0, 30.0, 40.0, 50.0]
    pred = [12.0, 16.0, 36.0, 27.0, 80.0]
    m = ev.point_metrics(true, pred)
    assert set(m) == set(ev.METRIC_NAMES)
    assert m["mae"] == pytest.approx((2 + 4 + 6 + 13 + 30) / 5)            # 11.0
    assert m["rmse"] == pytest.approx(math.sqrt((4 + 16 + 36 + 169 + 900) / 5))  # 15.0
    assert m["median_ae"] == pytest.approx(6.0)
    assert m["bias"] == pytest.approx((2 - 4 + 6 - 13 + 30) / 5)           # 4.2
    assert m["within_6"] == pytest.approx(3 / 5)   # |6| counts as within 6
    assert m["within_12"] == pytest.approx(3 / 5)  # 13 is not within 12
    assert m["within_24"] == pytest.approx(4 / 5)


def test_within_tolerates_float_rounding():
    # 100.1 - 94.1 is 6.000000000000001 in floating point; it is a 6-month error.
    assert ev.point_metrics([94.1], [100.1])["within_6"] == 1.0


def test_perfect_predictions():
    y = np.linspace(0, 228, 50)
    m = ev.point_metrics(y, y)
    assert m["mae"] == 0 and m["rmse"] == 0 and m["median_ae"] == 0 and m["bias"] == 0
    assert m["within_6"] == m["within_12"] == m["within_24"] == 1.0
    b = ev.bootstrap_metrics(y, y, n_boot=50)
    assert b["mae"] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert b["within_6"]["ci_low"] == 1.0


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="length"):
        ev.point_metrics([1, 2, 3], [1, 2])


# ---------------------------------------------------------------------------------- bootstrap

def test_bootstrap_ci_contains_value_and_narrows_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (30, 1200):
        true = rng.uniform(0, 228, n)
        pred = true + rng.normal(2.0, 10.0, n)
        b = ev.bootstrap_metrics(true, pred, n_boot=400, seed=3)
        point = ev.point_metrics(true, pred)
        for name in ev.METRIC_NAMES:
            assert b[name]["value"] == pytest.approx(point[name])
            assert b[name]["ci_low"] <= b[name]["value"] <= b[name]["ci_high"], name
        assert b["mae"]["ci_low"] < b["mae"]["ci_high"]
        widths.append(b["mae"]["ci_high"] - b["mae"]["ci_low"])
    assert widths[1] < widths[0] / 3  # ~ 1/sqrt(40) of the small-sample width


def test_bootstrap_deterministic_for_a_seed_and_chunking_is_invisible(monkeypatch):
    rng = np.random.default_rng(5)
    true = rng.uniform(0, 228, 50)
    pred = true + rng.normal(0, 8, 50)
    a = ev.bootstrap_metrics(true, pred, n_boot=300, seed=7)
    assert a == ev.bootstrap_metrics(true, pred, n_boot=300, seed=7)
    assert a != ev.bootstrap_metrics(true, pred, n_boot=300, seed=8)
    monkeypatch.setattr(ev, "_MAX_BOOT_ELEMENTS", 50 * 7)  # 7 replicates per chunk
    chunked = ev.bootstrap_metrics(true, pred, n_boot=300, seed=7)
    for name in ev.METRIC_NAMES:
        assert chunked[name]["ci_low"] == pytest.approx(a[name]["ci_low"])
        assert chunked[name]["ci_high"] == pytest.approx(a[name]["ci_high"])


def test_bootstrap_empty_and_single():
    empty = ev.bootstrap_metrics([], [], n_boot=20)
    assert set(empty) == set(ev.METRIC_NAMES)
    assert all(math.isnan(v) for m in empty.values() for v in m.values())
    one = ev.bootstrap_metrics([100.0], [107.0], n_boot=20)
    assert one["mae"] == {"value": 7.0, "ci_low": 7.0, "ci_high": 7.0}
    assert one["bias"]["value"] == 7.0
    for m in one.values():
        assert m["ci_low"] == m["value"] == m["ci_high"]


# ---------------------------------------------------------------------------- paired bootstrap

def test_paired_identical_predictions():
    rng = np.random.default_rng(2)
    true = rng.uniform(0, 228, 60)
    pred = true + rng.normal(0, 9, 60)
    r = ev.paired_bootstrap_mae_difference(true, pred, pred.copy(), n_boot=500)
    assert r["difference"] == 0.0
    assert (r["ci_low"], r["ci_high"]) == (0.0, 0.0)
    assert r["p_value"] == 1.0
    assert r["mae_a"] == r["mae_b"] == pytest.approx(np.abs(pred - true).mean())


def test_paired_much_worse_method_is_significant():
    rng = np.random.default_rng(4)
    true = rng.uniform(0, 228, 100)
    good = true + rng.normal(0, 5, 100)
    bad = true + rng.normal(0, 25, 100)
    r = ev.paired_bootstrap_mae_difference(true, bad, good, n_boot=1000, seed=1)
    assert r["difference"] == pytest.approx(r["mae_a"] - r["mae_b"])
    assert r["difference"] > 8
    assert 0 < r["ci_low"] <= r["difference"] <= r["ci_high"]
    assert r["p_value"] < 0.01
    flipped = ev.paired_bootstrap_mae_difference(true, good, bad, n_boot=1000, seed=1)
    assert flipped["difference"] == pytest.approx(-r["difference"])
    assert flipped["ci_high"] < 0 and flipped["p_value"] < 0.01


def test_paired_small_difference_is_not_significant():
    rng = np.random.default_rng(6)
    true = rng.uniform(0, 228, 40)
    a = true + rng.normal(0, 10, 40)
    b = true + rng.normal(0, 10, 40)
    r = ev.paired_bootstrap_mae_difference(true, a, b, n_boot=1000)
    assert r["ci_low"] < 0 < r["ci_high"]
    assert r["p_value"] > 0.05


# ------------------------------------------------------------------------------------- groups

def test_age_band_edges():
    months = [0, 23.9, 24, 71.9, 72, 119.9, 120, 167.9, 168, 227, 228, 240]
    assert list(ev.age_band_labels(months)) == [
        "0-2", "0-2", "2-6", "2-6", "6-10", "6-10", "10-14", "10-14", "14-19", "14-19", "14-19", "14-19"]


def test_evaluate_predictions_groups():
    df = pd.DataFrame({
        "id": [1, 2, 3, 4, 5, 6],
        "boneage_true": [24.0, 228.0, 240.0, 10.0, 100.0, 23.99],
        "boneage_pred": [30.0, 220.0, 240.0, 10.0, 90.0, 23.99],
        "male": [True, False, True, False, 1, 0],
    })
    r = ev.evaluate_predictions(df, n_boot=50)
    assert r["n"] == 6
    assert set(r) == {"n", "overall", "by_sex", "by_age_band"}
    assert list(r["by_age_band"]) == list(ev.AGE_BAND_LABELS)
    n_by_band = {k: v["n"] for k, v in r["by_age_band"].items()}
    assert n_by_band == {"0-2": 2, "2-6": 1, "6-10": 1, "10-14": 0, "14-19": 2}
    # 24 months alone in "2-6": error +6
    assert r["by_age_band"]["2-6"]["metrics"]["mae"]["value"] == 6.0
    # 228 (error -8) and 240 (error 0) in "14-19"
    assert r["by_age_band"]["14-19"]["metrics"]["mae"]["value"] == 4.0
    assert r["by_age_band"]["14-19"]["metrics"]["bias"]["value"] == -4.0
    assert math.isnan(r["by_age_band"]["10-14"]["metrics"]["mae"]["value"])
    # females: ids 2 (-8), 4 (0), 6 (0); males: ids 1 (+6), 3 (0), 5 (-10)
    assert r["by_sex"]["female"]["n"] == 3 and r["by_sex"]["male"]["n"] == 3
    assert r["by_sex"]["female"]["metrics"]["mae"]["value"] == pytest.approx(8 / 3)
    assert r["by_sex"]["male"]["metrics"]["mae"]["value"] == pytest.approx(16 / 3)
    assert r["by_sex"]["male"]["metrics"]["bias"]["value"] == pytest.approx(-4 / 3)
    assert r["overall"]["mae"]["value"] == pytest.approx(24 / 6)


def test_male_column_accepts_strings_and_rejects_others():
    df = _frame(6)
    df["male"] = ["True", "false", "1", "0", True, 0]
    r = ev.evaluate_predictions(df, n_boot=10)
    assert r["by_sex"]["male"]["n"] == 3
    df["male"] = ["True", "false", "yes", "0", True, 0]
    with pytest.raises(ValueError, match="male"):
        ev.evaluate_predictions(df, n_boot=10)


def test_missing_columns_raise_naming_them():
    df = _frame(5).drop(columns=["boneage_pred", "male"]).rename(columns={"id": "image"})
    with pytest.raises(ValueError) as info:
        ev.evaluate_predictions(df)
    msg = str(info.value)
    for name in ("boneage_pred", "male", "id"):       # missing / expected
        assert name in msg
    assert "image" in msg and "boneage_true" in msg   # found


def test_nan_predictions_raise_naming_ids():
    df = _frame(10)
    df.loc[[2, 7], "boneage_pred"] = np.nan
    with pytest.raises(ValueError, match="NaN") as info:
        ev.evaluate_predictions(df)
    assert str(df.loc[2, "id"]) in str(info.value) and str(df.loc[7, "id"]) in str(info.value)
    assert str(df.loc[3, "id"]) not in str(info.value)


def test_duplicate_ids_raise():
    df = _frame(5)
    df.loc[3, "id"] = df.loc[1, "id"]
    with pytest.raises(ValueError, match="unique"):
        ev.evaluate_predictions(df)


# ------------------------------------------------------------------------------------ markdown

def test_metrics_markdown_contents():
    df = _frame(40)
    r = ev.evaluate_predictions(df, n_boot=50)
    md = ev.metrics_markdown(r, "Larson18 test")
    assert md.startswith("# Larson18 test\n")
    assert "N = 40 images" in md
    assert f"{r['overall']['mae']['value']:.2f}" in md
    for heading in ("## Overall", "## By sex", "## By reference age band"):
        assert heading in md
    for label in ev.AGE_BAND_LABELS:
        assert f"| {label} |" in md
    assert "| Female |" in md and "| Male |" in md
    # also renders a result read back from JSON (NaN written as null) without crashing
    r["by_age_band"]["0-2"] = {"n": 0, "metrics": ev._json_safe(ev.bootstrap_metrics([], []))}
    assert "| 0-2 | 0 | – |" in ev.metrics_markdown(json.loads(json.dumps(ev._json_safe(r))), "t")


# --------------------------------------------------------------------------------------- files

def test_write_evaluation_writes_every_file(tmp_path):
    import matplotlib.pyplot as plt

    figs_before = plt.get_fignums()
    df = _frame(60)
    history = pd.DataFrame({"epoch": range(5), "loss": [5, 4, 3, 2.5, 2.2],
                            "val_loss": [5.5, 4.2, 3.5, 3.4, 3.6],
                            "mae": [30, 20, 15, 12, 11], "val_mae": [32, 22, 17, 15, 16]})
    paths = ev.write_evaluation(tmp_path / "eval", df, history=history, title="unit", n_boot=100)
    expected = {"predictions": "predictions.csv", "metrics_json": "metrics.json",
                "metrics_md": "metrics.md", "predicted_vs_reference": "predicted_vs_reference.png",
                "bland_altman": "bland_altman.png", "error_by_age": "error_by_age.png",
                "learning_curves": "learning_curves.png"}
    assert set(paths) == set(expected)
    for kind, name in expected.items():
        path = tmp_path / "eval" / name
        assert paths[kind] == str(path) and path.is_file() and path.stat().st_size > 0
        if name.endswith(".png"):
            data = path.read_bytes()
            assert data.startswith(PNG_MAGIC)
            assert len(data) < 200_000
    assert not [p for p in (tmp_path / "eval").iterdir() if p.name.endswith(".tmp")]
    assert plt.get_fignums() == figs_before  # no figures left registered

    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics == ev._json_safe(ev.evaluate_predictions(df, n_boot=100, seed=0))
    assert metrics["n"] == 60

    table = pd.read_csv(tmp_path / "eval" / "predictions.csv")
    assert list(table["id"]) == sorted(df["id"])
    assert "abs_error" in table.columns
    row = df.set_index("id").loc[table["id"].iloc[0]]
    assert table["abs_error"].iloc[0] == pytest.approx(abs(row["boneage_pred"] - row["boneage_true"]))

    assert "# unit" in (tmp_path / "eval" / "metrics.md").read_text()


def test_write_evaluation_without_history_and_with_empty_band(tmp_path):
    df = _frame(20)
    df["boneage_true"] = np.clip(df["boneage_true"], 30, 200)  # no 0-2 and no 14-19 images
    paths = ev.write_evaluation(tmp_path, df, n_boot=50)
    assert "learning_curves" not in paths and not (tmp_path / "learning_curves.png").exists()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["by_age_band"]["0-2"]["n"] == 0
    assert metrics["by_age_band"]["0-2"]["metrics"]["mae"]["value"] is None  # strict JSON, no NaN
    assert "NaN" not in (tmp_path / "metrics.json").read_text()


def test_write_evaluation_adds_a_tasks_extra_sections_and_columns(tmp_path):
    """A task's own per-image columns stay in predictions.csv; its sections go into metrics.json and .md."""
    df = _frame(20).assign(lower_90=lambda d: d["boneage_pred"] - 5, upper_90=lambda d: d["boneage_pred"] + 5)
    extra = {"uncertainty": ({"coverage_90": 0.85}, "## Uncertainty\n\ncoverage 85%")}
    ev.write_evaluation(tmp_path, df, n_boot=20, extra=extra)
    assert json.loads((tmp_path / "metrics.json").read_text())["uncertainty"] == {"coverage_90": 0.85}
    assert (tmp_path / "metrics.md").read_text().rstrip().endswith("## Uncertainty\n\ncoverage 85%")
    assert {"lower_90", "upper_90"} <= set(pd.read_csv(tmp_path / "predictions.csv").columns)
    with pytest.raises(ValueError, match="would overwrite"):
        ev.write_evaluation(tmp_path / "clash", df, n_boot=20, extra={"overall": ({}, "")})
    assert not (tmp_path / "clash").exists()


def test_write_evaluation_validates_before_writing(tmp_path):
    with pytest.raises(ValueError):
        ev.write_evaluation(tmp_path / "out", _frame(5).drop(columns="male"))
    assert not (tmp_path / "out").exists()


def test_learning_curves_empty_and_partial(tmp_path):
    empty = ev.plot_learning_curves(pd.DataFrame(columns=["epoch", "loss"]), tmp_path / "e.png")
    partial = ev.plot_learning_curves(pd.DataFrame({"epoch": [0, 1, 2], "loss": [3.0, 2.0, 1.5]}),
                                      tmp_path / "p.png")
    keras_dict = ev.plot_learning_curves({"loss": [3.0, 2.0], "val_mae": [20.0, 15.0]},
                                         tmp_path / "k.png")
    for p in (empty, partial, keras_dict):
        assert open(p, "rb").read(8) == PNG_MAGIC
