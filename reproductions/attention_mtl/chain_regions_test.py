"""Hand mask and iglovikov18 regions on radiographs without masks, checked on phantoms (whose truth is known)."""
import numpy as np

from common import phantoms
from reproductions.attention_mtl import attention, chain_regions
from reproductions.iglovikov18 import masks


def _phantom(index=0, size=256):
    return phantoms.sample_phantom(index, 0, size)


def test_the_chain_finds_a_phantoms_hand_and_key_points():
    for index in range(3):
        p = _phantom(index)
        hand, keypoints = chain_regions.hand_geometry(p.image)
        assert masks.iou(hand, p.mask > 127) > 0.8
        # Within 6 % of the side of the generator's own points (the heuristic was set on real hands)
        assert np.hypot(*(keypoints - p.keypoints).T).max() < 0.06 * 256


def test_no_hand_no_regions():
    hand, keypoints = chain_regions.hand_geometry(np.zeros((64, 48), np.uint8))
    assert keypoints is None and not hand.any()
    assert chain_regions.letterboxed_regions(np.zeros((64, 64), np.uint8), np.ones((64, 64), bool)) == (None, None)


def test_regions_lie_in_the_hand_where_the_registration_puts_them():
    p = _phantom()
    hand = p.mask > 127
    regions = chain_regions.region_masks(hand, p.keypoints)
    assert set(regions) == set(chain_regions.CHAIN_REGIONS)
    for m in regions.values():
        assert m.shape == hand.shape and not (m & ~hand).any() and m.any()
    np.testing.assert_array_equal(regions["rest_of_hand"], hand & ~(regions["carpal"] | regions["metacarpal"] |
                                                                   regions["fingers"] | regions["forearm"]))
    (tip_x, tip_y), _, (cap_x, cap_y) = np.round(p.keypoints).astype(int)
    assert regions["carpal"][cap_y, cap_x]  # the capitate is a carpal bone
    assert not regions["carpal"][tip_y + 2, tip_x] and not regions["metacarpal"][tip_y + 2, tip_x]  # the finger tip
    # Against iglovikov18's own registration (its TensorFlow warp, another implementation): registered onto
    # the canvas, each region lands in its box there, and fills the registered hand inside the box.
    from reproductions.iglovikov18 import preprocessing as ig_pp
    config = chain_regions.iglovikov18_config()
    scale = 0.1  # a 208 x 160 canvas
    canvas_hw = tuple(int(round(v * scale)) for v in config.registration.canvas)
    points = np.asarray(config.registration.keypoints, np.float32) * scale

    def register(m):
        return ig_pp.register_numpy(m.astype(np.uint8) * 255, p.keypoints, canvas_size=canvas_hw,
                                    canvas_points=points) > 127
    registered_hand = register(hand)
    for name in ("carpal", "metacarpal"):
        y0, x0, y1, x1 = (int(round(v * scale)) for v in config.regions[name])
        box = np.zeros(canvas_hw, bool)
        box[y0:y1, x0:x1] = True
        registered = register(regions[name])
        assert (registered & box).sum() >= 0.95 * registered.sum()
        assert (registered_hand & box & ~registered).sum() <= 0.05 * (registered_hand & box).sum()


def test_letterboxed_regions_stay_on_the_radiograph():
    p = _phantom(size=128)
    image = np.zeros((128, 128), np.uint8)
    image[:, 14:114] = p.image[:, 14:114]  # a portrait radiograph letterboxed into a square
    content = np.zeros((128, 128), bool)
    content[:, 14:114] = True
    hand, regions = chain_regions.letterboxed_regions(image, content)
    assert hand is not None and hand.any() and not hand[~content].any()
    direct_hand, direct_kp = chain_regions.hand_geometry(image[:, 14:114])
    np.testing.assert_array_equal(hand[:, 14:114], direct_hand)
    np.testing.assert_array_equal(regions["carpal"][:, 14:114],
                                  chain_regions.region_masks(direct_hand, direct_kp)["carpal"])
    assert attention.content_mask((128, 100), 128).sum() == content.sum()


def test_the_fingers_and_the_forearm_hold_the_distal_phalanges_and_the_radius_and_ulna():
    """Issue 19's other two regions, cut from iglovikov18's canvas above the metacarpal box and below the carpal
    box, against the phantom generator's own bones (its region map labels each bone pixel)."""
    names = phantoms.REGION_NAMES
    for index in range(4):
        p = phantoms.sample_phantom(index, 0, 256, regions=True)
        hand, keypoints = chain_regions.hand_geometry(p.image)
        regions = chain_regions.region_masks(hand, keypoints)
        tiles = [regions[n] for n in ("fingers", "forearm", "rest_of_hand")]
        boxes = regions["carpal"] | regions["metacarpal"]
        assert sum(m.astype(int) for m in tiles).max() == 1 and not any((m & boxes).any() for m in tiles)
        np.testing.assert_array_equal(boxes | tiles[0] | tiles[1] | tiles[2], hand)  # the five tile the mask

        def bones_in(region):  # share of each generator region among the bone pixels of a chain region
            labels = p.regions[regions[region] & (p.regions > 0)]
            return {n: float(np.mean(labels == k + 1)) for k, n in enumerate(names)}
        fingers, forearm = bones_in("fingers"), bones_in("forearm")
        assert fingers["distal_phalanges"] > 0.5 and fingers["distal_phalanges"] + fingers["middle_phalanges"] == 1
        assert forearm["radius_ulna"] > 0.8 and forearm["distal_phalanges"] == forearm["middle_phalanges"] == 0
