"""rsna17_second preprocessing: hand crop, CLAHE and the 49 patches, eagerly and inside tf.data."""
import warnings

import numpy as np
import pytest
import tensorflow as tf

from reproductions.rsna17_second import preprocessing as pp
from reproductions.rsna17_second.config import get_config

PAPER, THUMBS, SMALL = get_config().data, get_config("thumbs").data, get_config("small").data


def _hand_film(h=300, w=240, field=False, marker=True, seed=0):
    """A synthetic film: dark surround, a bright palm with five fingers, a small bright marker."""
    rng = np.random.default_rng(seed)
    img = 20 + 4 * rng.standard_normal((h, w))
    if field:  # a brighter collimation rectangle around the hand
        img[20:h - 20, 15:w - 15] += 60
    palm = (slice(150, 250), slice(70, 170))
    img[palm] += 150
    for k in range(5):
        img[70 + 10 * abs(k - 2):150, 72 + 20 * k:86 + 20 * k] += 150
    if marker:
        img[10:24, w - 30:w - 16] = 250
    return np.clip(img, 0, 255).astype(np.uint8)


def test_hand_box_finds_the_hand_and_ignores_the_marker():
    (y0, x0, y1, x1), found = pp.hand_box(_hand_film(), **PAPER.hand_crop)
    assert found
    assert 60 <= y0 <= 80 and 240 <= y1 <= 260 and 60 <= x0 <= 80 and 160 <= x1 <= 180, (y0, x0, y1, x1)


def test_hand_box_looks_inside_a_collimation_field():
    (y0, x0, y1, x1), found = pp.hand_box(_hand_film(field=True, marker=False), **PAPER.hand_crop)
    assert found
    assert y0 >= 55 and x0 >= 55 and y1 <= 265 and x1 <= 185, (y0, x0, y1, x1)  # the hand, not the field


def test_no_hand_falls_back_to_the_whole_film_with_a_warning():
    flat = np.full((90, 70), 128, np.uint8)
    assert pp.hand_box(flat, **PAPER.hand_crop) == ((0, 0, 90, 70), False)
    with pytest.warns(pp.HandNotFoundWarning, match="no hand found in film-7"):
        out = pp.crop_resize_clahe_array(flat, size=64, hand_crop=PAPER.hand_crop, clahe=PAPER.clahe, name="film-7")
    assert out.shape == (64, 64) and out.dtype == np.uint8


def test_square_crop_keeps_proportions_and_pads_outside_the_film():
    film = np.full((50, 40), 200, np.uint8)
    square = pp.square_crop(film, (0, 0, 50, 40), margin=0.1)
    assert square.shape == (60, 60)  # long side 50 + 2 x 10%
    assert square[:5].max() == 0 and square[:, :10].max() == 0  # zero padding around the film
    assert square[5:55, 10:50].min() == 200


@pytest.mark.parametrize("data, stride", [(PAPER, 64), (THUMBS, 16)])
def test_grid_geometry(data, stride):
    origins = pp.patch_origins(data.image_size, data.patch_size, data.patch_grid)
    assert len(origins) == 49 and pp.patch_stride(data.image_size, data.patch_size) == stride
    assert origins[0] == (0, 0) and origins[-1] == (data.image_size - data.patch_size,) * 2  # border to border
    assert origins[1] == (0, stride) and origins[7] == (stride, 0)  # row-major
    assert data.patch_size - stride == data.patch_size // 2  # neighbours overlap by half a patch
    centres = pp.patch_centres(data.image_size, data.patch_size)
    np.testing.assert_allclose(centres[0], [data.patch_size / 2] * 2)


def _check_patches(image, patches, data):
    assert patches.shape == (49, data.patch_size, data.patch_size, 1) and patches.dtype == np.uint8
    p = data.patch_size
    for k, (y, x) in enumerate(pp.patch_origins(data.image_size, p)):
        np.testing.assert_array_equal(patches[k], image[y:y + p, x:x + p])
    stride = pp.patch_stride(data.image_size, p)
    np.testing.assert_array_equal(patches[0][:, stride:], patches[1][:, :p - stride])  # horizontal overlap
    np.testing.assert_array_equal(patches[0][stride:], patches[7][:p - stride])  # vertical overlap


def test_49_patches_of_one_image_eagerly():
    image = np.random.default_rng(0).integers(0, 256, (SMALL.image_size,) * 2 + (1,), dtype=np.uint8)
    _check_patches(image, pp.extract_patches(tf.constant(image), SMALL.patch_size).numpy(), SMALL)


def test_49_patches_of_one_image_inside_tf_data():
    images = np.random.default_rng(1).integers(0, 256, (3,) + (SMALL.image_size,) * 2 + (1,), dtype=np.uint8)
    ds = tf.data.Dataset.from_tensor_slices(images).map(lambda im: pp.extract_patches(im, SMALL.patch_size))
    assert ds.element_spec.shape == (49, SMALL.patch_size, SMALL.patch_size, 1)
    for image, patches in zip(images, ds):
        _check_patches(image, patches.numpy(), SMALL)


def test_crop_resize_clahe_inside_tf_data_matches_eager():
    films = np.stack([_hand_film(seed=s)[..., None] for s in range(2)])
    ids = tf.constant(["a", "b"])
    fn = pp.make_example_preprocess(get_config("small"))
    ds = tf.data.Dataset.from_tensor_slices({"image": films, "id": ids, "mask": films}).map(fn)
    assert ds.element_spec["image"].shape == (SMALL.image_size, SMALL.image_size, 1)
    assert "mask" not in ds.element_spec  # phantom annotations no longer match a cropped image
    for got, film in zip(ds, films):
        eager = pp.crop_resize_clahe_array(film, size=SMALL.image_size, hand_crop=SMALL.hand_crop, clahe=SMALL.clahe)
        np.testing.assert_array_equal(got["image"].numpy()[..., 0], eager)


def test_expand_repeats_labels_and_numbers_the_positions():
    config = get_config("small")
    example = {"image": tf.zeros((SMALL.image_size,) * 2 + (1,), tf.uint8), "id": tf.constant("x"),
               "boneage_months": tf.constant(42.0), "male": tf.constant(1, tf.int64)}
    rows = pp.make_example_expand(config)(example)
    assert rows["image"].shape == (49, SMALL.patch_size, SMALL.patch_size, 1)
    assert rows["id"].shape == (49,) and set(rows["id"].numpy()) == {b"x"}
    np.testing.assert_array_equal(rows["boneage_months"].numpy(), 42.0)
    np.testing.assert_array_equal(rows["patch"].numpy(), np.arange(49))


def test_one_radiograph_is_decoded_and_cropped_once_for_its_49_training_rows(tiny_phantoms, monkeypatch):
    """Through common.pipeline.make_dataset: 49 rows per radiograph, one hand crop per radiograph."""
    from common import pipeline
    from reproductions.rsna17_second.task import TASK
    calls = []
    original = pp.crop_resize_clahe_array
    monkeypatch.setattr(pp, "crop_resize_clahe_array", lambda *a, **k: calls.append(1) or original(*a, **k))
    config = get_config("small")
    ds = pipeline.make_dataset(tiny_phantoms, "validation", preprocess=TASK.data.preprocess(config, False),
                               to_model_io=lambda b: b, batch_size=49, training=False, cache=True,
                               keys=TASK.data.example_keys, expand=TASK.data.expand(config, False))
    batches = list(ds)
    assert int(ds.cardinality()) == len(batches) == 16
    for b in batches:  # stored order: each batch is one radiograph's 49 patches, positions 0..48
        assert len(set(b["id"].numpy())) == 1 and b["image"].shape == (49, SMALL.patch_size, SMALL.patch_size, 1)
        np.testing.assert_array_equal(b["patch"].numpy(), np.arange(49))
    assert len(calls) == 16  # not 16 x 49


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="multiple of 6"):
        pp.patch_stride(100, 32)
    with pytest.raises(ValueError, match="uint8"):
        pp.crop_resize_clahe(tf.zeros((20, 20, 1), tf.float32), size=64, hand_crop=PAPER.hand_crop, clahe=PAPER.clahe)
    with pytest.raises(ValueError, match="missing"):
        pp.crop_resize_clahe(tf.zeros((20, 20, 1), tf.uint8), size=64, hand_crop={"method": "none"}, clahe=PAPER.clahe)
    with pytest.raises(ValueError, match="square image"):
        pp.extract_patches(tf.zeros((64, 32, 1), tf.uint8), 16)


def test_on_a_real_radiograph(shared_data):
    from common import images
    film = images.read_image(shared_data / "rsna-sample" / "images" / "1377.png")  # a raw film, 379 x 512
    (y0, x0, y1, x1), found = pp.hand_box(film, **PAPER.hand_crop)
    assert found and (y1 - y0) * (x1 - x0) < 0.9 * film.size  # a crop, not the whole film
    with warnings.catch_warnings():
        warnings.simplefilter("error", pp.HandNotFoundWarning)
        hand = pp.crop_resize_clahe(film[..., None], size=PAPER.image_size, hand_crop=PAPER.hand_crop, clahe=PAPER.clahe)
    patches = pp.extract_patches(hand, PAPER.patch_size).numpy()
    assert patches.shape == (49, 128, 128, 1)
    assert patches.reshape(49, -1).std(axis=1).min() > 1.0  # every patch holds some structure


# --- the whole-image variants (issue #8 ablation): a 1 x 1 grid, patch = image -------------------

WHOLE = get_config("thumbs_whole").data


def test_a_one_by_one_grid_is_the_whole_image():
    assert pp.patch_stride(WHOLE.image_size, WHOLE.patch_size, 1) == WHOLE.image_size
    assert pp.patch_origins(WHOLE.image_size, WHOLE.patch_size, 1) == [(0, 0)]
    np.testing.assert_allclose(pp.patch_centres(WHOLE.image_size, WHOLE.patch_size, 1), [[WHOLE.image_size / 2] * 2])
    image = np.random.default_rng(2).integers(0, 256, (40, 40, 1), dtype=np.uint8)
    patches = pp.extract_patches(tf.constant(image), 40, 1)
    assert patches.shape == (1, 40, 40, 1) and patches.dtype == tf.uint8
    np.testing.assert_array_equal(patches.numpy()[0], image)
    ds = tf.data.Dataset.from_tensor_slices(image[None]).map(lambda im: pp.extract_patches(im, 40, 1))
    assert ds.element_spec.shape == (1, 40, 40, 1)  # static inside tf.data too
    with pytest.raises(ValueError, match="patch_size must equal image_size"):
        pp.patch_stride(40, 32, 1)
    with pytest.raises(ValueError, match="grid >= 1"):
        pp.patch_stride(40, 40, 0)


def test_one_radiograph_is_one_row_holding_the_whole_preprocessed_crop():
    config = get_config("thumbs_whole")
    film = _hand_film()
    example = {"image": tf.constant(film[..., None]), "id": tf.constant("h"),
               "boneage_months": tf.constant(42.0), "male": tf.constant(0, tf.int64)}
    crop = pp.crop_resize_clahe_array(film, size=WHOLE.image_size, hand_crop=WHOLE.hand_crop, clahe=WHOLE.clahe)
    rows = pp.make_example_expand(config)(pp.make_example_preprocess(config)(example))
    assert rows["image"].shape == (1, WHOLE.image_size, WHOLE.image_size, 1)
    np.testing.assert_array_equal(rows["image"].numpy()[0, ..., 0], crop)
    np.testing.assert_array_equal(rows["boneage_months"].numpy(), [42.0])
    np.testing.assert_array_equal(rows["patch"].numpy(), [0])
    stack = pp.make_example_test_patches(config)(example)["image"]  # what evaluate and predict see
    assert stack.shape == (1, WHOLE.image_size, WHOLE.image_size, 1)
    np.testing.assert_array_equal(stack.numpy()[0, ..., 0], crop)


def test_whole_variant_through_make_dataset_gives_one_row_per_radiograph(tiny_phantoms):
    from common import pipeline
    from reproductions.rsna17_second.task import TASK
    config = get_config("thumbs_whole")
    assert TASK.data.expand_sample(config) is None  # the one row is always kept
    ds = pipeline.make_dataset(tiny_phantoms, "validation", preprocess=TASK.data.preprocess(config, False),
                               to_model_io=lambda b: b, batch_size=4, training=False, cache=True,
                               keys=TASK.data.example_keys, expand=TASK.data.expand(config, False))
    rows = [r for b in ds for r in zip(b["id"].numpy(), b["image"].numpy(), b["patch"].numpy())]
    films = {e["id"].numpy(): tf.io.decode_png(e["image"], channels=1).numpy()
             for e in pipeline.read_split(tiny_phantoms, "validation")}
    assert int(ds.cardinality()) == 4 and len(rows) == len(films) == 16  # 16 radiographs, one row each
    for example_id, image, patch in rows:
        assert patch == 0 and image.shape == (WHOLE.image_size, WHOLE.image_size, 1)
        crop = pp.crop_resize_clahe_array(films[example_id], size=WHOLE.image_size, hand_crop=WHOLE.hand_crop,
                                          clahe=WHOLE.clahe)
        np.testing.assert_array_equal(image[..., 0], crop)
