"""The pooling step: shapes, the attention weights summing to one over the grid, the per-sex query."""
import keras
import numpy as np
import pytest

from reproductions.attention_mtl import pooling


def _model(kind, per_sex=True):
    keras.utils.set_random_seed(0)
    grid = keras.Input((3, 4, 8), name="image")
    male = keras.Input((1,), name="male")
    pooled = pooling.pool(grid, male if per_sex else None, kind, d_model=16, heads=4, gru_units=5,
                          per_sex_query=per_sex)
    return keras.Model({"image": grid, "male": male} if per_sex else {"image": grid}, pooled)


FEED = {"image": np.random.default_rng(0).normal(size=(2, 3, 4, 8)).astype("float32"),
        "male": np.array([[0.0], [1.0]], "float32")}


@pytest.mark.parametrize("kind, width", [("gap", 16), ("attention", 16), ("gru", 10)])
def test_each_pooling_gives_one_vector_per_image(kind, width):
    out = _model(kind).predict_on_batch(FEED)
    assert out.shape == (2, width) and np.isfinite(out).all()


def test_attention_weights_sum_to_one_over_the_grid_and_depend_on_the_sex():
    model = _model("attention")
    maps = pooling.attention_map_model(model).predict_on_batch(FEED)
    assert maps.shape == (2, 3, 4) and maps.dtype == np.float32
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    same_image = {"image": np.repeat(FEED["image"][:1], 2, axis=0), "male": FEED["male"]}
    female, male = pooling.attention_map_model(model).predict_on_batch(same_image)
    assert not np.allclose(female, male)  # one query per sex: the same hand is read differently


def test_one_query_without_the_sex_input():
    model = _model("attention", per_sex=False)
    assert model.get_layer("sex_queries").queries.shape == (1, 16)
    assert pooling.attention_map_model(model).predict_on_batch({"image": FEED["image"]}).shape == (2, 3, 4)


def test_bad_arguments_are_refused():
    grid = keras.Input((3, 4, 8))
    with pytest.raises(ValueError, match="Received: pooling='max'"):
        pooling.pool(grid, None, "max")
    with pytest.raises(ValueError, match="d_model=10, heads=4"):
        pooling.pool(grid, None, "attention", d_model=10, heads=4)
    with pytest.raises(ValueError, match="no attention pooling"):
        pooling.attention_map_model(_model("gap"))
