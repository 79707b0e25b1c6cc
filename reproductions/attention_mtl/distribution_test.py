"""The scoring rules: closed forms, and properness (the true law scores best in expectation)."""
import numpy as np
import pytest
from keras import ops

from reproductions.attention_mtl import distribution as dist

RNG = np.random.default_rng(0)
TRUE_LOC, TRUE_SCALE = 120.0, 10.0


def _samples(law, n=200_000):
    if law == "laplace":
        return RNG.laplace(TRUE_LOC, TRUE_SCALE, n)
    return RNG.normal(TRUE_LOC, TRUE_SCALE, n)


def expected(law, name, loc, scale, y):
    value = dist.score(ops.convert_to_tensor(y, "float32"), loc, scale, law, name)
    return float(np.mean(ops.convert_to_numpy(value)))


@pytest.mark.parametrize("law", dist.DISTRIBUTIONS)
def test_crps_closed_form_matches_its_definition(law):
    """CRPS(F, y) = E|X - y| - E|X - X'| / 2 (Gneiting & Raftery 2007, eq. 21), by Monte Carlo."""
    x, x2 = _samples(law), _samples(law)
    for y in (100.0, 120.0, 150.0):
        monte_carlo = np.mean(np.abs(x - y)) - 0.5 * np.mean(np.abs(x - x2))
        closed = float(ops.convert_to_numpy(dist.crps(ops.convert_to_tensor([y]), TRUE_LOC, TRUE_SCALE, law))[0])
        assert closed == pytest.approx(monte_carlo, abs=0.15)


@pytest.mark.parametrize("law", dist.DISTRIBUTIONS)
@pytest.mark.parametrize("name", dist.SCORES)
def test_the_true_law_scores_best(law, name):
    y = _samples(law, 50_000)
    best = expected(law, name, TRUE_LOC, TRUE_SCALE, y)
    for loc in (TRUE_LOC - 10, TRUE_LOC - 3, TRUE_LOC + 3, TRUE_LOC + 10):  # a wrong location scores worse
        assert expected(law, name, loc, TRUE_SCALE, y) > best
    for scale in (TRUE_SCALE / 3, TRUE_SCALE / 1.5, TRUE_SCALE * 1.5, TRUE_SCALE * 3):  # so does a wrong scale
        assert expected(law, name, TRUE_LOC, scale, y) > best


def test_crps_becomes_the_absolute_error_as_the_scale_vanishes():
    y = ops.convert_to_tensor([90.0, 130.0])
    for law in dist.DISTRIBUTIONS:
        value = ops.convert_to_numpy(dist.crps(y, 100.0, 1e-4, law))
        np.testing.assert_allclose(value, [10.0, 30.0], atol=1e-3)


def test_age_loss_reads_location_and_scale_from_the_months_output():
    y_true = np.array([[100.0], [110.0]], np.float32)
    y_pred = np.array([[100.0, 5.0], [100.0, 5.0]], np.float32)
    loss = ops.convert_to_numpy(dist.age_loss("laplace", "crps", weight=2.0)(y_true, y_pred))
    expected_values = 2.0 * 5.0 * (np.array([0.0, 2.0]) + np.exp(-np.array([0.0, 2.0])) - 0.75)
    np.testing.assert_allclose(loss, expected_values, rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(dist.absolute_error(y_true, y_pred)), [0.0, 10.0])


def test_unknown_law_or_score_is_refused():
    with pytest.raises(ValueError, match="Received: distribution='cauchy'"):
        dist.age_loss("cauchy")
    with pytest.raises(ValueError, match="Received: score='mse'"):
        dist.age_loss("laplace", "mse")
    with pytest.raises(ValueError, match="Received: distribution='point'"):
        dist.crps(ops.convert_to_tensor([1.0]), 1.0, 1.0, "point")  # a law's score; the point head has age_loss


def test_the_point_head_is_trained_with_the_absolute_error_and_has_no_likelihood():
    """The plain-L1 ablation: the location's absolute error (the CRPS of a point forecast), whatever the scale column."""
    y_true = np.array([[100.0], [110.0], [70.0]], np.float32)
    y_pred = np.array([[100.0, 1.0], [100.0, 1.0], [100.0, 1.0]], np.float32)
    loss = dist.age_loss(dist.POINT, "crps", weight=2.0)
    np.testing.assert_allclose(ops.convert_to_numpy(loss(y_true, y_pred)), [0.0, 20.0, 60.0])
    assert loss.__name__ == "point_l1" and dist.POINT in dist.AGE_HEADS and dist.POINT not in dist.DISTRIBUTIONS
    with pytest.raises(ValueError, match="no likelihood"):
        dist.age_loss(dist.POINT, "nll")
