"""Tests for Larson18 preprocessing, eagerly and inside tf.data (they can differ)."""
import cv2
import numpy as np
import pytest
import tensorflow as tf

from reproductions.larson18 import preprocessing as pp  # module import: `test_time_crops` is no test
from reproductions.larson18.config import get_config

SMALL = get_config("small")
CLAHE = SMALL.data.clahe  # clip limits 1, 3, 5 on 2 x 2 tiles: distinct channels at 72 px
LOAD, CROP = SMALL.data.image_size, SMALL.data.crop_size  # 72, 64


def _film(h=90, w=70, seed=0):
    """A low-contrast, non-square synthetic 'radiograph': dim gradient plus a few bright blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = 60 + 20 * yy / h + 5 * rng.standard_normal((h, w))
    for cy, cx in [(h // 3, w // 3), (2 * h // 3, w // 2), (h // 2, 3 * w // 4)]:
        img += 25 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0)
    return np.clip(img, 0, 255).astype(np.uint8)[..., None]


def _local_contrast(plane):
    """Mean absolute difference of neighbouring pixels: what CLAHE is meant to raise."""
    plane = np.asarray(plane, dtype=float)
    return np.abs(np.diff(plane, axis=0)).mean() + np.abs(np.diff(plane, axis=1)).mean()


def _preprocess(image, training):
    return pp.larson_preprocess(image, load_size=LOAD, crop_size=CROP, clahe=CLAHE, training=training)


@pytest.mark.parametrize("training", [True, False])
def test_preprocess_eager_shape_dtype_range(training):
    x = _preprocess(_film(), training)
    assert x.shape == (CROP, CROP, 3) and x.dtype == tf.float32
    x = x.numpy()
    assert np.all(np.abs(x) <= 255.0)
    assert abs(x.mean()) < 1e-3  # the authors' per-crop mean subtraction
    assert x.std() > 1.0


@pytest.mark.parametrize("training", [True, False])
def test_preprocess_inside_dataset_map(training):
    films = np.stack([_film(seed=s) for s in range(3)])
    ds = tf.data.Dataset.from_tensor_slices(films).map(lambda im: _preprocess(im, training))
    assert ds.element_spec.shape == (CROP, CROP, 3)  # static shape survives numpy_function
    assert ds.element_spec.dtype == tf.float32
    out = np.stack([x.numpy() for x in ds])
    assert out.shape == (3, CROP, CROP, 3)
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0.0, atol=1e-3)
    if not training:  # eager and graph give the same deterministic result
        eager = np.stack([_preprocess(f, False).numpy() for f in films])
        np.testing.assert_allclose(out, eager, atol=1e-4)


def test_eval_is_deterministic_and_training_is_random():
    film = _film()
    np.testing.assert_array_equal(_preprocess(film, False).numpy(), _preprocess(film, False).numpy())
    draws = [_preprocess(film, True).numpy() for _ in range(6)]
    assert any(not np.array_equal(draws[0], d) for d in draws[1:])


def test_clahe_raises_contrast_and_channels_differ():
    film = tf.constant(_film())
    small = pp.resize_square(film, LOAD)
    out = pp.apply_clahe(small, CLAHE)
    assert out.shape == (LOAD, LOAD, 3) and out.dtype == tf.uint8
    out = out.numpy().astype(float)
    base = small.numpy()[..., 0].astype(float)
    stds = out.std(axis=(0, 1))
    assert np.all(stds > base.std())  # CLAHE actually changes (raises) contrast
    assert stds[0] < stds[1] < stds[2]  # higher clip limit, more contrast
    assert all(_local_contrast(out[..., i]) > _local_contrast(base) for i in range(3))
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(out[..., i] - out[..., j]).mean() > 1.0  # three different channels
    # Same as OpenCV called directly, as in the authors' clahe_augment.
    direct = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(2, 2)).apply(small.numpy()[..., 0])
    np.testing.assert_array_equal(out[..., 1], direct)


def test_clahe_inside_dataset_map_matches_eager():
    films = np.stack([_film(seed=s) for s in range(2)])
    ds = tf.data.Dataset.from_tensor_slices(films).map(
        lambda im: pp.apply_clahe(pp.resize_square(im, LOAD), CLAHE))
    assert ds.element_spec.shape == (LOAD, LOAD, 3)
    for got, film in zip(ds, films):
        np.testing.assert_array_equal(got.numpy(), pp.apply_clahe(pp.resize_square(film, LOAD), CLAHE).numpy())


def test_resize_warp_fills_square_and_pad_keeps_aspect():
    film = np.full((100, 50, 1), 200, np.uint8)  # bright, twice as tall as wide
    warped = pp.resize_square(film, 40, mode="warp").numpy()[..., 0]
    padded = pp.resize_square(film, 40, mode="pad").numpy()[..., 0]
    assert warped.shape == padded.shape == (40, 40)
    assert warped.min() == 200
    assert padded[:, :9].max() == 0 and padded[:, -9:].max() == 0  # black side bars
    assert padded[:, 12:28].min() == 200


def test_test_time_crops_are_the_authors_ten():
    assert [b[:3] for b in pp.crop_boxes(256, 224)[:5]] == [
        ("ul", 0, 0), ("ur", 0, 32), ("ll", 32, 0), ("lr", 32, 32), ("center", 16, 16)]
    loaded = pp.larson_load(_film(), load_size=LOAD, clahe=CLAHE)
    assert loaded.shape == (LOAD, LOAD, 3) and loaded.dtype == tf.float32
    crops = pp.test_time_crops(loaded, CROP)
    assert crops.shape == (10, CROP, CROP, 3) and crops.dtype == tf.float32
    img, crops = loaded.numpy(), crops.numpy()
    far, mid = LOAD - CROP, (LOAD - CROP) // 2
    ur = img[:CROP, far:]
    np.testing.assert_allclose(crops[1], ur - ur.mean(), atol=1e-4)
    centre = img[mid:mid + CROP, mid:mid + CROP]
    np.testing.assert_allclose(crops[4], centre - centre.mean(), atol=1e-4)
    flipped_ul = img[:, ::-1][:CROP, :CROP]  # the mirror's upper-left is the original's ur, mirrored
    np.testing.assert_allclose(crops[5], flipped_ul - flipped_ul.mean(), atol=1e-4)
    np.testing.assert_allclose(crops[5], crops[1][:, ::-1], atol=1e-4)
    assert len({c.tobytes() for c in crops}) == 10
    np.testing.assert_allclose(crops.mean(axis=(1, 2, 3)), 0.0, atol=1e-3)


def test_test_time_crops_inside_dataset_map():
    films = np.stack([_film(seed=s) for s in range(2)])
    fn = pp.make_example_test_time_crops(SMALL)
    ds = tf.data.Dataset.from_tensor_slices({"image": films, "male": [True, False]}).map(fn)
    assert ds.element_spec["image"].shape == (10, CROP, CROP, 3)
    for got, film in zip(ds, films):
        np.testing.assert_allclose(got["image"].numpy(), fn({"image": film})["image"].numpy(), atol=1e-4)


def test_paper_size_clahe_channels_differ_on_a_256_px_film():
    paper = get_config().data
    film = _film(300, 240)
    loaded = pp.larson_load(film, load_size=paper.image_size, clahe=paper.clahe).numpy()
    assert loaded.shape == (256, 256, 3)
    grey = pp.resize_square(film, paper.image_size).numpy()[..., 0]
    contrast = [_local_contrast(grey)] + [_local_contrast(loaded[..., i]) for i in range(3)]
    assert contrast == sorted(contrast) and len(set(contrast)) == 4, contrast


def test_small_tiles_would_collapse_the_channels_and_warn():
    eight = [{"clip_limit": c, "tile_grid": 8} for c in (1.0, 3.0, 5.0)]
    assert pp.opencv_clip_counts(72, eight) == [1, 1, 1]
    assert pp.opencv_clip_counts(256, eight) == [4, 12, 20]
    with pytest.warns(UserWarning, match="identical channels"):
        out = pp.apply_clahe(pp.resize_square(_film(), 72), eight).numpy()
    assert np.array_equal(out[..., 0], out[..., 2])  # what the warning is about


def test_stateless_seed_repeats_the_same_crop_and_flip():
    loaded = pp.larson_load(_film(), load_size=LOAD, clahe=CLAHE)
    kwargs = dict(crop_size=CROP, training=True)
    a = pp.crop_and_normalize(loaded, seed=tf.constant([1, 2], tf.int64), **kwargs).numpy()
    b = pp.crop_and_normalize(loaded, seed=tf.constant([1, 2], tf.int64), **kwargs).numpy()
    np.testing.assert_array_equal(a, b)
    others = [pp.crop_and_normalize(loaded, seed=tf.constant([s, 7], tf.int64), **kwargs).numpy()
              for s in range(3, 9)]
    assert any(not np.array_equal(a, o) for o in others)


def test_example_adapters_in_a_pipeline_like_chain():
    """decode -> preprocess -> cache -> augment(seed) -> batch, as common.pipeline does."""
    films = np.stack([_film(seed=s) for s in range(4)])
    examples = {"image": films, "boneage": [10.0, 50.0, 100.0, 200.0], "male": [1, 0, 1, 0],
                "mask": np.zeros_like(films)}
    base = tf.data.Dataset.from_tensor_slices(examples)
    train = base.map(pp.make_example_preprocess(SMALL, training=True)).cache()
    assert "mask" not in train.element_spec
    assert train.element_spec["image"].shape == (LOAD, LOAD, 3)
    assert train.element_spec["image"].dtype == tf.uint8  # cached at a quarter of float's size
    seeds = tf.data.Dataset.random(seed=0).batch(2)
    train = tf.data.Dataset.zip((train, seeds)).map(pp.make_example_augment(SMALL)).batch(2)
    batch = next(iter(train))
    assert batch["image"].shape == (2, CROP, CROP, 3) and batch["image"].dtype == tf.float32
    evaluation = base.map(pp.make_example_preprocess(SMALL, training=False)).batch(4)
    batch = next(iter(evaluation))
    assert batch["image"].shape == (4, CROP, CROP, 3)
    expected = np.stack([_preprocess(f, False).numpy() for f in films])
    np.testing.assert_allclose(batch["image"].numpy(), expected, atol=1e-4)


def test_caffe_normalization_matches_keras_resnet50():
    from keras.applications.resnet50 import preprocess_input

    crop = np.random.default_rng(0).uniform(0, 255, (8, 8, 3)).astype("float32")
    np.testing.assert_allclose(pp.normalize(crop, "caffe").numpy(), preprocess_input(crop.copy()),
                               atol=1e-4)


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="uint8"):
        _preprocess(_film().astype(np.float32), True)
    with pytest.raises(ValueError, match="crop_size"):
        pp.larson_preprocess(_film(), load_size=32, crop_size=64, clahe=CLAHE, training=False)
    with pytest.raises(ValueError, match="clip_limit"):
        pp.apply_clahe(_film(), [{"clip_limit": 2.0}])
    with pytest.raises(ValueError, match="Received: mode='stretch'"):
        pp.resize_square(_film(), 32, mode="stretch")


def test_on_a_real_radiograph(shared_data):
    sample = shared_data / "rsna-sample"
    if not (sample / "labels.csv").exists():
        pytest.skip(f"{sample} is absent")
    path = sorted((sample / "images").glob("*.png"))[0]
    image = tf.io.decode_png(tf.io.read_file(str(path)), channels=1)
    assert image.shape[0] != image.shape[1]  # native aspect
    x = pp.larson_preprocess(image, load_size=LOAD, crop_size=CROP, clahe=CLAHE, training=False)
    assert x.shape == (CROP, CROP, 3)
    paper = get_config().data  # at 256 px local contrast rises with the clip limit on every sample film
    loaded = pp.larson_load(image, load_size=paper.image_size, clahe=paper.clahe).numpy()
    grey = pp.resize_square(image, paper.image_size).numpy()[..., 0]
    contrast = [_local_contrast(grey)] + [_local_contrast(loaded[..., i]) for i in range(3)]
    assert contrast == sorted(contrast) and len(set(contrast)) == 4, contrast
