"""Decision fusion: every rule maps constant patch predictions to the constant; the learned weights fit."""
import numpy as np
import pytest

from reproductions.rsna17_second import fusion


def _simplex(n, seed):
    w = np.random.default_rng(seed).random(n)
    return w / w.sum()


@pytest.mark.parametrize("method", fusion.FUSIONS)
@pytest.mark.parametrize("constant", [0.0, 37.5, 228.0])
def test_constant_patch_predictions_fuse_to_the_constant(method, constant):
    patches = np.full((5, 49), constant)
    weights = _simplex(49, 0) if method == "learned" else None
    np.testing.assert_allclose(fusion.fuse(patches, method, weights), constant, atol=1e-9)


def test_learned_weights_fitted_on_constant_predictions_still_give_the_constant():
    rng = np.random.default_rng(1)
    patches = rng.uniform(0, 228, (40, 49))
    weights = fusion.fit_simplex_weights(patches, patches @ _simplex(49, 2))
    constant = np.full((3, 49), 101.0)
    np.testing.assert_allclose(fusion.fuse(constant, "learned", weights), 101.0, atol=1e-9)


def test_simplex_projection():
    for v in (np.array([0.2, 0.3, 0.5]), np.array([3.0, -1.0, 0.5]), np.array([-5.0, -5.0]), np.zeros(49)):
        w = fusion.project_to_simplex(v)
        assert (w >= 0).all() and w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(fusion.project_to_simplex([0.2, 0.3, 0.5]), [0.2, 0.3, 0.5])  # already on it


def test_fit_recovers_sparse_weights_and_stays_on_the_simplex():
    rng = np.random.default_rng(0)
    truth = np.zeros(49)
    truth[[3, 24, 40]] = [0.5, 0.3, 0.2]
    patches = rng.uniform(0, 228, (200, 49))
    weights = fusion.fit_simplex_weights(patches, patches @ truth)
    assert (weights >= 0).all() and weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(weights, truth, atol=1e-3)


def test_learned_fusion_beats_the_mean_when_some_positions_see_only_background():
    rng = np.random.default_rng(3)
    age = rng.uniform(0, 228, 300)
    patches = age[:, None] + rng.normal(0, 5, (300, 49))
    patches[:, :20] = rng.uniform(0, 228, (300, 20))  # 20 positions that know nothing
    train, test = slice(0, 200), slice(200, 300)
    weights = fusion.fit_simplex_weights(patches[train], age[train])
    learned = np.abs(fusion.fuse(patches[test], "learned", weights) - age[test]).mean()
    mean = np.abs(fusion.fuse(patches[test], "mean") - age[test]).mean()
    median = np.abs(fusion.fuse(patches[test], "median") - age[test]).mean()
    assert learned < median < mean
    assert weights[:20].sum() < 0.05


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown fusion"):
        fusion.fuse(np.zeros((2, 49)), "max")
    with pytest.raises(ValueError, match="needs weights"):
        fusion.fuse(np.zeros((2, 49)), "learned")
    with pytest.raises(ValueError, match="Expected 49 fusion weights"):
        fusion.fuse(np.zeros((2, 49)), "learned", np.ones(7))
    with pytest.raises(ValueError, match=r"\[radiographs, patches\]"):
        fusion.fuse(np.zeros(49), "mean")
    with pytest.raises(ValueError, match="one reference age per radiograph"):
        fusion.fit_simplex_weights(np.zeros((3, 49)), np.zeros(2))


@pytest.mark.parametrize("method", fusion.FUSIONS)
def test_one_patch_per_radiograph_fuses_to_that_prediction(method):
    """The whole-image variants (1 x 1 grid): every fusion is the identity, the learned weight is [1]."""
    predictions = np.array([[12.5], [101.0], [0.0], [228.0]])
    weights = fusion.fit_simplex_weights(predictions, [20.0, 90.0, 5.0, 200.0]) if method == "learned" else None
    if method == "learned":
        np.testing.assert_array_equal(weights, [1.0])
    np.testing.assert_allclose(fusion.fuse(predictions, method, weights), predictions[:, 0], atol=1e-12)


def test_one_patch_fit_needs_no_division():
    for predictions in (np.zeros((3, 1)), np.full((1, 1), 55.0)):  # all-zero: no Lipschitz constant
        np.testing.assert_array_equal(fusion.fit_simplex_weights(predictions, np.zeros(len(predictions))), [1.0])
    with pytest.raises(ValueError, match="not all 0"):
        fusion.fuse(np.ones((2, 1)), "learned", [0.0])
    with pytest.raises(ValueError, match=">= 0"):
        fusion.fuse(np.ones((2, 3)), "learned", [1.0, -0.5, 0.5])
