"""Attention maps over the image and their mass: sums, shapes, masks, the letterbox, spread and centre."""
import keras
import numpy as np
import pytest

from reproductions.attention_mtl import attention
from reproductions.attention_mtl.model import build_attention_mtl


def _inputs(n=3, size=64):
    rng = np.random.default_rng(0)
    return {"image": rng.random((n, size, size, 3), dtype=np.float32), "male": np.array([[0.0], [1.0], [1.0]][:n], "float32")}


def test_maps_sum_to_one_over_the_grid_and_over_the_image():
    keras.utils.set_random_seed(0)
    model = build_attention_mtl(64, backbone="tiny_cnn", d_model=32)
    grid = attention.attention_maps(model, _inputs())
    assert grid.shape == (3, 4, 4)  # tiny_cnn: stride 16
    np.testing.assert_allclose(grid.sum(axis=(1, 2)), 1.0, rtol=1e-12)
    assert (grid > 0).all() and not np.allclose(grid[0], grid[0].mean())  # a softmax, not uniform
    up = attention.upsample(grid, 64)
    assert up.shape == (3, 64, 64)
    np.testing.assert_allclose(up.sum(axis=(1, 2)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(up[:, :16, :16].sum(axis=(1, 2)), grid[:, 0, 0])  # cell (0, 0) covers that block
    shown = attention.smooth(grid, 64)
    assert shown.shape == (3, 64, 64) and (shown >= 0).all()
    np.testing.assert_allclose(shown.sum(axis=(1, 2)), 1.0, rtol=1e-9)
    assert attention.attention_map_model(model) is attention.attention_map_model(model)  # built once


def test_without_the_sex_input_and_without_attention():
    model = build_attention_mtl(64, backbone="tiny_cnn", d_model=32, sex_input=False)
    grid = attention.attention_maps(model, {"image": _inputs()["image"]})
    np.testing.assert_allclose(grid.sum(axis=(1, 2)), 1.0, rtol=1e-12)
    gap = build_attention_mtl(64, backbone="tiny_cnn", d_model=32, pooling="gap")
    assert attention.has_attention(model) and not attention.has_attention(gap)
    with pytest.raises(ValueError, match="no attention pooling"):
        attention.attention_maps(gap, _inputs())


@pytest.mark.parametrize("cells, size", [(3, 10), (7, 64), (12, 384), (5, 5)])
def test_upsampling_keeps_the_mass_whatever_the_sizes(cells, size):
    grid = np.random.default_rng(1).random((2, cells, cells))
    grid /= grid.sum(axis=(1, 2), keepdims=True)
    up = attention.upsample(grid, size)
    assert up.shape == (2, size, size)
    np.testing.assert_allclose(up.sum(axis=(1, 2)), 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="finer than the image"):
        attention.upsample(grid, cells - 1)


def test_mass_in_a_mask_is_one_when_the_map_sits_inside_it():
    grid = np.zeros((1, 4, 4))
    grid[0, 1, 2] = 1.0  # all of it on one cell
    up = attention.upsample(grid, 64)[0]
    labels = np.zeros((64, 64), int)
    labels[10:40, 28:56] = 2  # a "hand region" holding the cell's block (rows 16-31, columns 32-47)
    labels[50:, :] = 1
    mass = attention.label_mass(up, labels, 3)
    assert mass.shape == (4,)
    assert mass[2] == pytest.approx(1.0) and mass[[0, 1, 3]].sum() == pytest.approx(0.0)
    spread_out = attention.upsample(np.full((1, 4, 4), 1 / 16), 64)[0]
    mass = attention.label_mass(spread_out, labels, 3)
    assert mass.sum() == pytest.approx(1.0) and mass[1:].sum() <= 1.0
    assert mass[2] == pytest.approx((labels == 2).mean())  # uniform attention: each label gets its area


def test_content_mask_follows_the_letterbox():
    tall = attention.content_mask((40, 30), 64)  # 40 x 30 padded to 40 x 40: 5 columns each side
    assert tall.shape == (64, 64) and tall[:, 32].all() and not tall[:, 0].any() and not tall[:, 63].any()
    assert tall.sum() == 64 * 48
    assert attention.content_mask((50, 50), 64).all()


def test_spread_and_centre():
    uniform = np.full((1, 4, 4), 1 / 16)
    peak = np.zeros((1, 4, 4))
    peak[0, 3, 0] = 1.0
    np.testing.assert_allclose(attention.spread(np.concatenate([uniform, peak])), [1.0, 1 / 16])
    np.testing.assert_allclose(attention.centroid(uniform), [[0.5, 0.5]])
    np.testing.assert_allclose(attention.centroid(peak), [[0.125, 0.875]])  # bottom left cell
