import numpy as np
import pandas as pd
import pytest

from reproductions.attention_mtl import conformal, interval_plot


def _table(n=200, seed=0, point=False):
    """A predictions table with conformal intervals fitted on a separate calibration draw."""
    rng = np.random.default_rng(seed)
    def draw(m):
        y = rng.uniform(10, 220, m)
        scale = np.full(m, 1.0) if point else rng.uniform(4, 16, m)
        return y, y + rng.laplace(0, scale), scale
    y_cal, mu_cal, s_cal = draw(300)
    quantiles = conformal.fit(y_cal, mu_cal, s_cal)
    y, mu, scale = draw(n)
    df = pd.DataFrame({"boneage_true": y, "boneage_pred": mu, conformal.SCALE_COLUMN: scale})
    for name, bounds in conformal.intervals(mu, scale, quantiles).items():
        df[name] = bounds
    return df


def test_binomial_range_holds_the_central_mass():
    low, high = interval_plot.binomial_range(89, 0.9)
    assert (round(low * 89), round(high * 89)) == (74, 85)  # exact binomial(89, 0.9): P(K < 74) and P(K > 85) each < 2.5 %
    low, high = interval_plot.binomial_range(1000, 0.9)
    assert 0.88 < low < 0.9 < high < 0.92  # +- 1.96 sd = +- 1.9 points at n = 1,000
    assert interval_plot.binomial_range(16, 0.9)[1] == 1.0


def test_draws_the_panels_and_counts_what_lies_outside(tmp_path):
    df = _table()
    drawn = interval_plot.plot_intervals(df, tmp_path / "intervals.png", title="t")
    assert (tmp_path / "intervals.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn["levels"] == ["80", "90", "95"]
    outside = ((df.boneage_true < df.lower_90) | (df.boneage_true > df.upper_90)).sum()
    assert drawn["outside"] == {"level": "90", "images": int(outside)}
    assert drawn["coverage"]["90"] == pytest.approx(1 - outside / len(df))
    assert drawn["coverage"] == pytest.approx({k: v["coverage"] for k, v in conformal.report(df)["levels"].items()})


def test_a_point_head_is_drawn_and_an_uncalibrated_run_is_not(tmp_path):
    assert interval_plot.plot_intervals(_table(point=True), tmp_path / "point.png") is not None
    uncalibrated = _table().assign(lower_80=np.nan, upper_80=np.nan, lower_90=np.inf, lower_95=np.nan)
    assert interval_plot.plot_intervals(uncalibrated, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_the_command_redraws_from_predictions_csv_and_explains_a_wrong_folder(tmp_path, capsys):
    _table(n=40).to_csv(tmp_path / "predictions.csv", index=False)
    assert interval_plot.main([str(tmp_path)]) == 0
    assert (tmp_path / interval_plot.FILE_NAME).is_file()
    assert "40 images" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        interval_plot.main([str(tmp_path / "nowhere")])
    assert "does not exist" in capsys.readouterr().err
