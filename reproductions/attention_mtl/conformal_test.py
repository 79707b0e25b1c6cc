"""Split-conformal math on synthetic numbers: the finite-sample rank, coverage near nominal, widths, Spearman."""
import numpy as np
import pandas as pd
import pytest

from reproductions.attention_mtl import conformal


def test_the_quantile_takes_the_n_plus_one_rank():
    scores = np.arange(1, 20, dtype=float)  # n = 19: (n + 1) * 0.9 = 18 -> the 18th smallest
    assert conformal.conformal_quantile(scores, 0.9) == 18.0
    assert conformal.conformal_quantile(scores, 0.8) == 16.0
    assert conformal.conformal_quantile(scores[::-1], 0.95) == 19.0  # rank 19 of 19, order does not matter
    assert conformal.conformal_quantile(scores[:10], 0.95) == float("inf")  # rank 11 > n = 10


def _exchangeable(n, seed):
    """Ages, a location with heteroscedastic Laplace errors, and a predicted scale that is right up to a factor."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(0, 228, n)
    true_scale = rng.uniform(3, 20, n)
    loc = y + rng.laplace(0, true_scale)
    predicted = true_scale * 1.7  # a wrong but informative scale: conformal fixes its size, not its ranking
    return y, loc, predicted


def _frame(y, loc, scale, quantiles):
    return pd.DataFrame({"boneage_true": y, "boneage_pred": loc, **conformal.intervals(loc, scale, quantiles)})


def test_coverage_on_exchangeable_data_is_near_nominal():
    coverage = {name: [] for name in ("80", "90", "95")}
    for seed in range(20):
        y, loc, scale = _exchangeable(4000, seed)
        q = conformal.fit(y[:1000], loc[:1000], scale[:1000])
        result = conformal.report(_frame(y[1000:], loc[1000:], scale[1000:], q))
        for name in coverage:
            coverage[name].append(result["levels"][name]["coverage"])
    for name, nominal in (("80", 0.80), ("90", 0.90), ("95", 0.95)):
        mean = np.mean(coverage[name])
        assert nominal - 0.01 <= mean <= nominal + 0.01 + 1 / 1001, (name, mean)  # the guarantee, averaged over splits
        assert all(abs(c - nominal) < 0.04 for c in coverage[name])  # and each split is close


def test_widths_grow_with_the_level_and_spread_tracks_the_error():
    y, loc, scale = _exchangeable(3000, 1)
    q = conformal.fit(y[:1500], loc[:1500], scale[:1500])
    assert q["80"] < q["90"] < q["95"]
    result = conformal.report(_frame(y[1500:], loc[1500:], scale[1500:], q))
    widths = [result["levels"][n]["mean_width_months"] for n in ("80", "90", "95")]
    assert widths == sorted(widths) and widths[0] > 0
    assert result["spearman_scale_vs_abs_error"] > 0.2  # the scale is informative here
    md = conformal.markdown(result, {"images": 1500, "split": "validation", "dataset": "synthetic"})
    assert "| 90% |" in md and "Spearman" in md


def test_a_constant_scale_gives_intervals_of_one_width():
    y, loc, _ = _exchangeable(500, 2)
    scale = np.full(500, 4.0)
    q = conformal.fit(y, loc, scale)
    frame = _frame(y, loc, scale, q)
    assert np.allclose(frame["upper_90"] - frame["lower_90"], 2 * q["90"] * 4.0)
    assert np.isnan(conformal.report(frame)["spearman_scale_vs_abs_error"])


def test_spearman_is_rank_correlation():
    assert conformal.spearman([1, 2, 3, 4], [10, 20, 30, 1000]) == pytest.approx(1.0)
    assert conformal.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="scale must be > 0"):
        conformal.nonconformity([1.0], [1.0], [0.0])
    with pytest.raises(ValueError, match="Received: level=1.5"):
        conformal.conformal_quantile([1.0], 1.5)
    assert conformal.interval_columns()[:3] == ("scale_months", "lower_80", "upper_80")
