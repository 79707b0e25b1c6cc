"""Hand mask and bone regions of a real radiograph, from the iglovikov18 chain: where attention is counted.

Real radiograph folders carry no masks or regions. The iglovikov18 chain makes both for them
(reproductions/iglovikov18/README.md): its first stage's bootstrap mask (blur, Otsu, closing,
largest piece, with its sanity check) and the three key points read off that mask (middle-finger tip,
thumb tip, capitate centre) are the targets its U-Net and key-point network learn from, and its
registration maps those key points onto the paper's 2080 x 1600 canvas, where its carpal and
metacarpal networks crop fixed boxes (iglovikov18 config `regions`). Here the same steps run in the
other direction: each image pixel is mapped onto the canvas by the registration's affine map and
belongs to a region when it lands in that region's box and lies in the hand mask. So the attention
on "carpal" is the attention on exactly the pixels iglovikov18's carpal networks see, and the two
tables can stand side by side.

Why the bootstrap stage and not the trained U-Net and key-point network: they are the chain's own
targets, deterministic, and need no trained runs (the chain's trained weights are not committed).
The boxes overlap (the carpal box's top holds the metacarpal bases), so the region shares do not
sum. Issue 19 asks for four regions (carpals, metacarpals + proximal phalanges, distal phalanges,
radius / ulna) and iglovikov18 boxes only the first two, so the other two are cut from the same canvas
by the boxes' edges (this kit's definition, not the paper's): "fingers" is the hand above the
metacarpal box (on rsna-512 radiographs the distal phalanges of the long fingers and the tips of their
middle phalanges: the box reaches past the proximal ones; the thumb's lie beside it), "forearm" the hand
below the carpal box (the distal radius and ulna, and their shafts where the film shows them). The
distal radius and ulna epiphyses can reach into the carpal box's bottom rows; those pixels count as
carpal. "Rest of the hand" is the mask outside all four (the thumb beside the metacarpal box, the
sides of the wrist). An image whose bootstrap mask fails the
chain's sanity check, or gives no key points, gets no regions (NaN), and the tables say how many did.
"""
from __future__ import annotations

import numpy as np

# iglovikov18's two region boxes, the hand beyond them towards the finger tips and the forearm, then the rest
CHAIN_REGIONS = ("carpal", "metacarpal", "fingers", "forearm", "rest_of_hand")
CHAIN_REGION_TITLES = {"carpal": "carpal box (iglovikov18)", "metacarpal": "metacarpal box (iglovikov18)",
                       "fingers": "fingers above the metacarpal box (distal phalanges, middle ones' tips)",
                       "forearm": "forearm below the carpal box (radius / ulna)", "rest_of_hand": "rest of the hand"}


def iglovikov18_config():
    """iglovikov18's key-point config: its canvas, key-point positions, region boxes and key-point heuristic."""
    from reproductions.iglovikov18.config import get_config
    return get_config("keypoints")


def hand_geometry(image, config=None):
    """(mask [H, W] bool, key points [3, 2] (x, y) px) of a [H, W] uint8 radiograph, or (mask, None) when the
    chain's bootstrap fails its sanity check or gives no key points (mask then all False)."""
    from reproductions.iglovikov18 import preprocessing as ig_pp
    config = config or iglovikov18_config()
    heuristic = config.keypoints.heuristic
    image = np.asarray(image, np.uint8)
    # The bootstrap settings the chain's segment and key-point stages use on real radiographs
    # (iglovikov18 preprocessing._tf_heuristic_keypoints).
    mask, keypoints, weight = ig_pp.keypoints_with_weight(
        image, 0.01, 0.03, float(heuristic["capitate_back"]), tuple(heuristic["thumb_sector_deg"]))
    if float(weight) <= 0:
        return np.zeros(image.shape[:2], bool), None
    h, w = image.shape[:2]
    return mask > 0, np.asarray(keypoints, np.float64) * np.array([w, h], np.float64)


def region_masks(hand, keypoints, config=None) -> dict[str, np.ndarray]:
    """{region: [H, W] bool} for CHAIN_REGIONS: pixels of the hand mask whose centre the registration
    (key points -> the canvas's key points) maps into iglovikov18's carpal / metacarpal box, above the
    metacarpal box (fingers), below the carpal box (forearm); the rest of the mask. Raises ValueError for collinear key points (no affine map), as the registration does."""
    from common.geometry import affine_from_points
    config = config or iglovikov18_config()
    hand = np.asarray(hand, bool)
    to_canvas = affine_from_points(np.asarray(keypoints, np.float64),
                                   np.asarray(config.registration.keypoints, np.float64))  # [2, 3], image -> canvas
    h, w = hand.shape
    ys, xs = np.mgrid[0:h, 0:w]  # pixel (i, j) sits at (x, y) = (j, i), as the registration's warp puts it
    cx = to_canvas[0, 0] * xs + to_canvas[0, 1] * ys + to_canvas[0, 2]
    cy = to_canvas[1, 0] * xs + to_canvas[1, 1] * ys + to_canvas[1, 2]
    out = {}
    for name in CHAIN_REGIONS[:2]:
        y0, x0, y1, x1 = config.regions[name]  # full-scale canvas px, as the registration's key points
        out[name] = hand & (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1)
    out["fingers"] = hand & (cy < config.regions["metacarpal"][0])  # above the box's top edge, at any x
    out["forearm"] = hand & (cy >= config.regions["carpal"][2])  # below the box's bottom edge, off the canvas too
    out["rest_of_hand"] = hand & ~(out["carpal"] | out["metacarpal"] | out["fingers"] | out["forearm"])
    return out


def letterboxed_regions(image, content, config=None):
    """The hand mask and regions of a letterboxed radiograph [S, S] uint8 whose own pixels are `content`
    ([S, S] bool, attention.content_mask): (hand [S, S] bool, {region: [S, S] bool}), or (None, None) when
    the chain gives none. The chain runs on the radiograph's own pixels (the padding cut off), so the
    padding does not enter the Otsu threshold."""
    image = np.asarray(image, np.uint8)
    rows, cols = np.nonzero(content.any(axis=1))[0], np.nonzero(content.any(axis=0))[0]
    if rows.size == 0 or cols.size == 0:
        return None, None
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    hand, keypoints = hand_geometry(image[top:bottom, left:right], config)
    if keypoints is None:
        return None, None
    try:
        regions = region_masks(hand, keypoints, config)
    except ValueError:  # collinear key points: the registration has no map either
        return None, None

    def place(m):
        full = np.zeros(image.shape[:2], bool)
        full[top:bottom, left:right] = m
        return full
    return place(hand), {name: place(m) for name, m in regions.items()}
