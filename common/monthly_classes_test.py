"""Tests for the monthly-class read-out: class k = k months, its loss, metric and read-outs."""
import keras
import numpy as np
import pytest

from common import monthly_classes as mc

C = 240


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _probs(*rows):
    """[N, C] probabilities from {month: p} dicts."""
    out = np.zeros((len(rows), C), np.float32)
    for i, row in enumerate(rows):
        for month, p in row.items():
            out[i, month] = p
    return out


def test_expected_and_most_probable_month():
    probs = _probs({100: 1.0}, {10: 0.5, 20: 0.5}, {8: 0.954, 14: 0.046})
    np.testing.assert_allclose(_np(mc.expected_age(probs)), [100.0, 15.0, 8 * 0.954 + 14 * 0.046], rtol=1e-5)
    np.testing.assert_array_equal(_np(mc.argmax_age(probs)), [100, 10, 8])
    np.testing.assert_array_equal(mc.class_months(4), [0.0, 1.0, 2.0, 3.0])


def test_read_out_puts_the_primary_estimate_first():
    probs = _probs({10: 0.5, 11: 0.5})
    read = mc.read_out(probs, "argmax")
    assert list(read) == ["argmax", "expected"] and read["argmax"].dtype == np.float64
    assert read["argmax"].tolist() == [10.0] and read["expected"].tolist() == pytest.approx([10.5])
    assert list(mc.read_out(probs, "expected")) == ["expected", "argmax"]


def test_age_to_class_rounds_and_clips_numpy_and_tf():
    import tensorflow as tf
    np.testing.assert_array_equal(mc.age_to_class(np.array([-3.0, 10.4, 10.6, 400.0])), [0, 10, 11, 239])
    assert mc.age_to_class(np.array([7.2])).dtype == np.int32 and int(mc.age_to_class(7.2)) == 7
    got = mc.age_to_class(tf.constant([-1.0, 5.6, 500.0]), num_classes=100)
    assert got.dtype == tf.int32 and got.numpy().tolist() == [0, 6, 99]
    assert _np(mc.month_class(np.array([[-3.0], [10.6], [400.0]]), C)).tolist() == [0, 11, 239]


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_crossentropy_is_against_the_months_class(smoothing):
    months = np.array([[10.4], [300.0]], np.float32)
    probs = _probs({10: 0.5, 11: 0.5}, {239: 0.25, 0: 0.75})
    loss = mc.crossentropy_loss(C, smoothing, name="larson_class_crossentropy")
    assert loss.__name__ == "larson_class_crossentropy"
    target = np.zeros((2, C), np.float32)
    target[0, 10] = target[1, 239] = 1.0
    target = target * (1 - smoothing) + smoothing / C
    expected = -(target * np.log(np.clip(probs, keras.backend.epsilon(), 1.0))).sum(axis=1)
    np.testing.assert_allclose(_np(loss(months, probs)), expected, rtol=1e-5)
    assert mc.crossentropy_loss(C).__name__ == "month_crossentropy"


def test_the_metric_is_the_expected_ages_error_in_months():
    metric = mc.mae_metric()
    assert metric.name == "mae"
    metric.update_state(np.array([[12.0], [20.0]], np.float32), _probs({10: 1.0}, {20: 0.5, 30: 0.5}))
    assert float(metric.result()) == pytest.approx((2.0 + 5.0) / 2)
    assert mc.mae_metric() is not metric  # a fresh one each time (a Task compiles its own)
