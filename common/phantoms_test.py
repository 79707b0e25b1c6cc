"""Tests of the synthetic hand phantoms: determinism, shapes, anatomy, pixels, labels."""
import dataclasses

import cv2
import numpy as np
import pytest

from common import phantoms
from common.phantoms import (CARPAL_ORDER, KEYPOINT_NAMES, Anatomy, Phantom, anatomy,
                             render_phantom, sample_phantom)

AGES = np.arange(0.0, 240.5, 1.0)


def _assert_same(a: Phantom, b: Phantom):
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert (a.boneage_months, a.true_boneage_months, a.male) == \
        (b.boneage_months, b.true_boneage_months, b.male)


# --- determinism ---------------------------------------------------------------------------

def test_sample_is_deterministic_per_seed_and_index():
    _assert_same(sample_phantom(5, seed=3), sample_phantom(5, seed=3))
    # independent of what was drawn before
    sample_phantom(6, seed=3)
    _assert_same(sample_phantom(5, seed=3, size=96), sample_phantom(5, seed=3, size=96))


@pytest.mark.parametrize("other", [(5, 4), (6, 3)])
def test_different_seed_or_index_differs(other):
    a = sample_phantom(5, seed=3, size=96)
    b = sample_phantom(other[0], seed=other[1], size=96)
    assert not np.array_equal(a.image, b.image)
    assert a.true_boneage_months != b.true_boneage_months


def test_render_is_a_function_of_its_generator_state():
    a = render_phantom(100.0, True, np.random.default_rng(1), size=96)
    b = render_phantom(100.0, True, np.random.default_rng(1), size=96)
    c = render_phantom(100.0, True, np.random.default_rng(2), size=96)
    _assert_same(a, b)
    assert not np.array_equal(a.image, c.image)


# --- shapes, ranges, mask and key points -----------------------------------------------------

@pytest.mark.parametrize("size", [64, 128, 256])
def test_shapes_dtypes_ranges(size):
    for i in range(6):
        ph = sample_phantom(i, seed=0, size=size)
        assert ph.image.shape == (size, size) and ph.image.dtype == np.uint8
        assert ph.mask.shape == (size, size) and ph.mask.dtype == np.uint8
        assert set(np.unique(ph.mask)) <= {0, 255}
        assert ph.keypoints.shape == (len(KEYPOINT_NAMES), 2) and ph.keypoints.dtype == np.float32
        assert np.all(ph.keypoints >= 0) and np.all(ph.keypoints <= size - 1)
        assert 0.0 <= ph.boneage_months <= 240.0
        assert 1.0 <= ph.true_boneage_months <= 228.0
        assert isinstance(ph.male, bool)
        assert ph.image.std() > 5            # not a blank picture
        assert 0.04 < (ph.mask > 0).mean() < 0.7


def _distance_to_mask(mask, point):
    ys, xs = np.nonzero(mask)
    return float(np.sqrt((xs - point[0]) ** 2 + (ys - point[1]) ** 2).min())


def test_mask_is_one_hand_and_keypoints_lie_on_it():
    for i in range(24):
        ph = sample_phantom(i, seed=1, size=128)
        # a single silhouette: markers and rulers are not part of it
        n_labels, _ = cv2.connectedComponents((ph.mask > 0).astype(np.uint8))
        assert n_labels == 2, f"index {i}: {n_labels - 1} mask components"
        for name, point in zip(KEYPOINT_NAMES, ph.keypoints):
            assert _distance_to_mask(ph.mask, point) <= 1.5, (i, name, point)
        # the capitate is well inside the hand
        cx, cy = np.round(ph.keypoints[2]).astype(int)
        assert np.all(ph.mask[cy - 2:cy + 3, cx - 2:cx + 3] == 255), i
        # a left hand, PA view: fingers up, thumb on the right of the image
        middle, thumb, capitate = ph.keypoints
        assert middle[1] < capitate[1] - 0.2 * 128
        assert thumb[0] > capitate[0]
        # the fingertip key points lie at the silhouette's edge, not deep inside it
        for point in (middle, thumb):
            x, y = np.round(point).astype(int)
            assert np.any(ph.mask[max(y - 3, 0):y + 4, max(x - 3, 0):x + 4] == 0)


def test_mask_does_not_depend_on_exposure():
    """The mask is the silhouette, not a threshold of the (noisy, varied) picture."""
    for seed in range(4):
        ph = render_phantom(120.0, False, np.random.default_rng(seed), size=128)
        inside = ph.image[ph.mask > 0].astype(float).mean()
        outside = ph.image[ph.mask == 0].astype(float).mean()
        assert inside > outside + 10


# --- anatomy follows age and sex -------------------------------------------------------------

def _series(male, field):
    return [getattr(anatomy(a, male), field) for a in AGES]


@pytest.mark.parametrize("male", [False, True])
def test_carpals_appear_in_order_and_grow(male):
    previous = None
    first_seen = {}
    for age in AGES:
        anat = anatomy(age, male)
        assert anat.visible_carpals == tuple(n for n in CARPAL_ORDER if n in anat.visible_carpals)
        assert set(anat.carpal_sizes) == set(CARPAL_ORDER)
        for name in CARPAL_ORDER:
            size = anat.carpal_sizes[name]
            assert (size > 0) == (name in anat.visible_carpals)
            assert 0.0 <= size <= 1.0
            if size > 0:
                first_seen.setdefault(name, age)
        if previous is not None:
            assert len(anat.visible_carpals) >= len(previous.visible_carpals)
            for name in CARPAL_ORDER:
                assert anat.carpal_sizes[name] >= previous.carpal_sizes[name]
        previous = anat
    assert anatomy(0, male).visible_carpals == ()
    assert anatomy(228, male).visible_carpals == CARPAL_ORDER
    seen = [first_seen[n] for n in CARPAL_ORDER]
    assert seen == sorted(seen)
    # a carpal keeps growing after it appears
    assert anatomy(first_seen["capitate"] + 60, male).carpal_sizes["capitate"] > \
        anatomy(first_seen["capitate"], male).carpal_sizes["capitate"] + 0.2


def test_girls_ossify_earlier_than_boys():
    for age in AGES:
        assert len(anatomy(age, False).visible_carpals) >= len(anatomy(age, True).visible_carpals)
    assert len(anatomy(60, False).visible_carpals) > len(anatomy(60, True).visible_carpals)
    assert "pisiform" in anatomy(120, False).visible_carpals
    assert "pisiform" not in anatomy(120, True).visible_carpals


@pytest.mark.parametrize("male", [False, True])
def test_growth_plates_close_and_epiphyses_and_hand_grow(male):
    plate = np.array(_series(male, "growth_plate_open"))
    ratio = np.array(_series(male, "epiphysis_ratio"))
    scale = np.array(_series(male, "hand_scale"))
    assert plate[0] == 1.0 and plate[-1] == 0.0
    assert np.all((plate >= 0) & (plate <= 1)) and np.all(np.diff(plate) <= 0)
    assert np.all((ratio >= 0) & (ratio <= 1)) and np.all(np.diff(ratio) >= 0)
    assert ratio[0] == 0.0 and ratio[-1] == 1.0 and ratio[36] < ratio[120] < ratio[-1]
    assert np.all(np.diff(scale) > 0)
    assert scale[-1] > 1.6 * scale[0]


def _fusion_age(male):
    plate = np.array(_series(male, "growth_plate_open"))
    return float(AGES[np.argmax(plate == 0.0)])


def test_girls_growth_plates_fuse_before_boys():
    girls, boys = _fusion_age(False), _fusion_age(True)
    assert girls < boys
    assert 13 * 12 <= girls <= 15 * 12
    assert 15 * 12 <= boys <= 17 * 12
    # at 14.5 y a boy's plates are still open, a girl's are closed
    assert anatomy(174, True).growth_plate_open > 0.1
    assert anatomy(174, False).growth_plate_open == 0.0


def test_anatomy_is_deterministic_and_frozen():
    a, b = anatomy(97.5, True), anatomy(97.5, True)
    assert a == b and isinstance(a, Anatomy)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.hand_scale = 2.0
    assert anatomy(-5, True) == anatomy(0, True) and anatomy(300, False) == anatomy(240, False)


# --- the pixels follow the anatomy -----------------------------------------------------------
# Equally seeded generators give the same pose, exposure and noise, so a pair of renders
# differs only in anatomy.

def test_hand_silhouette_grows_with_age():
    for male in (False, True):
        areas = []
        for age in (18.0, 72.0, 132.0, 204.0):
            areas.append(np.mean([(render_phantom(age, male, np.random.default_rng(s), size=128)
                                   .mask > 0).mean() for s in range(5)]))
        assert np.all(np.diff(areas) > 0), areas


def _carpal_window_mean(ph):
    """Mean intensity in a disc around the capitate, radius relative to the hand length."""
    middle, _, capitate = ph.keypoints
    radius = 0.11 * np.linalg.norm(middle - capitate)
    yy, xx = np.mgrid[:ph.image.shape[0], :ph.image.shape[1]]
    disc = (xx - capitate[0]) ** 2 + (yy - capitate[1]) ** 2 <= radius ** 2
    return float(ph.image[disc].astype(float).mean())


def test_carpal_region_fills_with_bone():
    for seed in range(5):
        young = render_phantom(24.0, True, np.random.default_rng(seed))
        old = render_phantom(192.0, True, np.random.default_rng(seed))
        assert _carpal_window_mean(old) > _carpal_window_mean(young) + 8, seed


def test_girls_carpals_show_earlier_in_pixels():
    for seed in range(5):
        girl = render_phantom(62.0, False, np.random.default_rng(seed))   # 7 carpals
        boy = render_phantom(62.0, True, np.random.default_rng(seed))     # 4 carpals
        assert _carpal_window_mean(girl) > _carpal_window_mean(boy) + 3, seed


def _dark_gaps_along_middle_finger(ph):
    """Dark gaps (joints, open growth plates) met walking from the middle finger tip down to
    the metacarpal: the brightest pixel across a narrow band at each step, thresholded half
    way between the gap and bone levels."""
    tip, _, capitate = ph.keypoints.astype(np.float64)
    length = np.linalg.norm(capitate - tip)
    along = (capitate - tip) / length
    across = np.array([-along[1], along[0]])
    s = np.arange(0.0, 0.66 * length, 0.5)
    o = np.linspace(-0.03 * length, 0.03 * length, 9)
    pts = tip[None, None] + s[:, None, None] * along + o[None, :, None] * across
    pts = pts.astype(np.float32)
    profile = cv2.remap(ph.image.astype(np.float32), pts[..., 0], pts[..., 1],
                        cv2.INTER_LINEAR).max(axis=1)
    profile = np.convolve(profile, np.ones(3) / 3, mode="same")
    lo, hi = np.percentile(profile, 5), np.percentile(profile, 90)
    below = profile < lo + 0.5 * (hi - lo)
    return int(np.sum(below[1:] & ~below[:-1]))


def test_open_growth_plates_show_as_extra_gaps():
    """A child's finger shows joints plus open growth plates; an adult's only the joints."""
    child = [_dark_gaps_along_middle_finger(render_phantom(96.0, True, np.random.default_rng(s),
                                                           size=384)) for s in range(8)]
    adult = [_dark_gaps_along_middle_finger(render_phantom(210.0, True, np.random.default_rng(s),
                                                           size=384)) for s in range(8)]
    assert np.mean(child) > np.mean(adult) + 1.5, (child, adult)
    assert all(3 <= a <= 5 for a in adult), adult     # DIP, PIP, MCP (+ one spurious at most)


def test_capitate_ossifies_at_its_key_point():
    for seed in range(5):
        before = render_phantom(1.0, True, np.random.default_rng(seed))   # no carpals yet
        after = render_phantom(12.0, True, np.random.default_rng(seed))   # capitate visible
        vals = []
        for ph in (before, after):
            x, y = np.round(ph.keypoints[2]).astype(int)
            vals.append(ph.image[y - 1:y + 2, x - 1:x + 2].astype(float).mean())
        assert vals[1] > vals[0] + 15, (seed, vals)


# --- hand regions ---------------------------------------------------------------------------

@pytest.mark.parametrize("age, male", [(1.0, True), (70.0, False), (200.0, True)])
def test_region_map_leaves_the_pixels_alone_and_tiles_the_hand_mask(age, male):
    plain = render_phantom(age, male, np.random.default_rng(4), size=128)
    with_regions = render_phantom(age, male, np.random.default_rng(4), size=128, regions=True)
    _assert_same(plain, with_regions)
    assert plain.regions is None
    regions = with_regions.regions
    assert regions.shape == plain.mask.shape and regions.dtype == np.uint8
    np.testing.assert_array_equal(regions > 0, plain.mask > 0)  # every hand pixel has a region, nothing else does
    present = set(np.unique(regions).tolist()) - {0}
    assert present == set(range(1, len(phantoms.REGION_NAMES) + 1)), present  # carpals too, before they ossify


def test_regions_sit_where_the_anatomy_says():
    names = phantoms.REGION_NAMES
    for seed in range(4):
        ph = sample_phantom(seed, seed=9, size=256, regions=True)
        capitate_x, capitate_y = np.round(ph.keypoints[2]).astype(int)
        assert names[ph.regions[capitate_y, capitate_x] - 1] == "carpals"
        ys, xs = np.nonzero(ph.regions)
        # down the image (towards the forearm) the forearm bones, up it the fingertips
        mean_y = {n: ys[ph.regions[ys, xs] == i + 1].mean() for i, n in enumerate(names)}
        assert mean_y["radius_ulna"] > mean_y["carpals"] > mean_y["metacarpals_proximal_phalanges"] \
            > mean_y["distal_phalanges"], (seed, mean_y)


# --- labels ---------------------------------------------------------------------------------

def test_label_noise_is_centred_and_clipped():
    phs = [sample_phantom(i, seed=11, size=48) for i in range(200)]
    labels = np.array([p.boneage_months for p in phs])
    true = np.array([p.true_boneage_months for p in phs])
    err = labels - true
    assert abs(err.mean()) < 1.5
    assert 4.0 < err.std() < 8.0
    assert labels.min() >= 0.0 and labels.max() <= 240.0
    assert 0.4 < np.mean([p.male for p in phs]) < 0.68
    assert true.min() >= 1.0 and true.max() <= 228.0 and true.max() - true.min() > 180


def test_label_clipping_and_noise_free_labels():
    low = [render_phantom(2.0, True, np.random.default_rng(s), size=48,
                          label_noise_months=30.0).boneage_months for s in range(40)]
    high = [render_phantom(236.0, False, np.random.default_rng(s), size=48,
                           label_noise_months=30.0).boneage_months for s in range(40)]
    assert min(low) == 0.0 and max(high) == 240.0
    assert all(0.0 <= v <= 240.0 for v in low + high)
    exact = render_phantom(77.0, True, np.random.default_rng(0), size=48, label_noise_months=0.0)
    assert exact.boneage_months == exact.true_boneage_months == 77.0


# --- contact sheet --------------------------------------------------------------------------

def test_contact_sheet_writes_a_png(tmp_path):
    path = tmp_path / "sub" / "sheet.png"
    phantoms.main(["--contact-sheet", str(path), "--size", "64"])
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image.shape[1] > image.shape[0] > 100
