"""Masks and key points on real radiographs without annotations (NumPy + OpenCV).

The paper labelled hand masks by hand for a first U-Net and grew its training set iteratively
from the U-Net's own predictions, and labelled the key points by hand. The kit has no manual
labels for real radiographs, so it makes both itself:

* `bootstrap_mask`: a classical mask, the seed of the iteration: blur, Otsu threshold,
  closing (bridges the joint gaps of thin fingers), the largest connected component that does
  not run along three or more image sides (film borders, bright backgrounds), holes filled;
  when that piece is nearly convex (a film or plate around the hand, not a hand), the same
  again inside it.
* `refine_mask`: the U-Net's own prediction, kept only where it agrees with the classical mask
  (IoU >= a threshold); the paper's manual review of predicted masks, replaced by agreement.
* `keypoints_from_mask`: the three key points read off a mask's shape, for a left hand with the
  fingers pointing up (the RSNA convention): the palm centre is the maximum of the distance
  transform; the middle finger tip is the mask pixel farthest from it within 60 degrees of
  "up"; the thumb tip the farthest within a sector to the right of that axis; the capitate
  lies back from the palm centre, opposite the finger tip, by a fraction of their distance.

How good these are is measured on phantoms, where the truth is known (tests and README).
"""
from __future__ import annotations

import cv2
import numpy as np

cv2.setNumThreads(1)


def _plane(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"Expected one uint8 image [H, W] or [H, W, 1]. Received: shape={image.shape}, "
                         f"dtype={image.dtype}")
    return image


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """0/255 mask with every enclosed background region filled."""
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 255)
    return (padded | (255 - flood))[1:-1, 1:-1]


def largest_component(mask: np.ndarray, avoid_borders: int = 3) -> np.ndarray:
    """The largest 8-connected foreground component (0/255), preferring one touching < avoid_borders sides."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros_like(mask)
    h, w = mask.shape
    best, best_area, fallback, fallback_area = 0, -1, 0, -1
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        sides = int(x == 0) + int(y == 0) + int(x + bw == w) + int(y + bh == h)
        if area > fallback_area:
            fallback, fallback_area = i, area
        if sides < avoid_borders and area > best_area:
            best, best_area = i, area
    keep = best if best_area > 0.02 * h * w else fallback
    return np.where(labels == keep, 255, 0).astype(np.uint8)


def bootstrap_mask(image, blur_sigma: float = 0.01, close_size: float = 0.03, max_solidity: float = 0.9,
                   max_rounds: int = 3) -> np.ndarray:
    """A classical hand mask of one radiograph: [H, W] (or [H, W, 1]) uint8 -> [H, W] uint8 0/255.

    Args:
        image: uint8 radiograph, bone and tissue bright.
        blur_sigma: Gaussian blur sigma as a fraction of the longer side.
        close_size: side of the closing's structuring element, as a fraction of the longer side.
        max_solidity: a piece more convex than this (a film, a plate) is thresholded again inside.
        max_rounds: at most this many thresholds, each inside the previous piece.
    """
    plane = _plane(image)
    side = max(plane.shape)
    sigma = max(blur_sigma * side, 0.5)
    blurred = cv2.GaussianBlur(plane, (0, 0), sigma)
    k = max(3, int(round(close_size * side)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    region = np.ones(plane.shape, bool)
    mask = np.zeros(plane.shape, np.uint8)
    for _ in range(max_rounds):
        # Otsu over the pixels of the current region only (first the whole film).
        level, _ = cv2.threshold(blurred[region].reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        candidate = np.where(region & (blurred > level), 255, 0).astype(np.uint8)
        candidate = cv2.morphologyEx(candidate, cv2.MORPH_CLOSE, kernel)
        candidate = fill_holes(largest_component(candidate))
        if candidate.sum() == 0:
            break
        mask = candidate
        # A hand is far from convex (fingers); a nearly convex piece is a film or a bright plate
        # around the hand: threshold again inside it.
        if solidity(mask) < max_solidity:
            break
        region = mask > 0
    return mask


def solidity(mask) -> float:
    """Area of a 0/255 mask over the area of its convex hull (1 for a rectangle, ~0.6-0.8 for a hand)."""
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    points = cv2.findNonZero(binary)
    if points is None:
        return 0.0
    hull = np.zeros_like(binary)
    cv2.fillConvexPoly(hull, cv2.convexHull(points), 1)     # counted in pixels, like the mask
    return float(binary.sum() / max(int(hull.sum()), 1))


def clean_mask(probability, threshold: float = 0.5, largest: bool = True) -> np.ndarray:
    """A predicted probability map [H, W] -> 0/255 mask: threshold, largest component, holes filled."""
    mask = np.where(np.asarray(probability, np.float32) >= threshold, 255, 0).astype(np.uint8)
    if largest:
        mask = fill_holes(largest_component(mask, avoid_borders=5))
    return mask


def iou(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def dice(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    total = a.sum() + b.sum()
    return float(2.0 * np.logical_and(a, b).sum() / total) if total else 1.0


def refine_mask(predicted, bootstrap, min_iou: float = 0.8):
    """The U-Net's mask where it agrees with the bootstrap (IoU >= min_iou), else None (left out)."""
    return predicted if iou(predicted, bootstrap) >= min_iou else None


def _signed_angle(axis, vectors):
    """Angle (degrees) from `axis` to each vector, positive towards image right when axis points up."""
    cross = axis[0] * vectors[:, 1] - axis[1] * vectors[:, 0]
    return np.degrees(np.arctan2(cross, vectors @ axis))


def keypoints_from_mask(mask, capitate_back: float = 0.55, thumb_sector_deg=(30.0, 120.0),
                        up_cone_deg: float = 60.0) -> np.ndarray | None:
    """The three key points read off a left-hand mask (fingers up): [3, 2] (x, y) pixels, or None.

    Order: middle finger tip, thumb tip, capitate centre (common/phantoms.py KEYPOINT_NAMES).
    None when the mask is empty or no pixel lies in the finger cone or the thumb sector.
    """
    m = (_plane(np.asarray(mask, np.uint8)) > 0).astype(np.uint8)
    if m.sum() < 16:
        return None
    dist = cv2.distanceTransform(m, cv2.DIST_L2, 5)
    py, px = np.unravel_index(int(np.argmax(dist)), dist.shape)
    palm = np.array([px, py], np.float64)
    ys, xs = np.nonzero(m)
    v = np.stack([xs, ys], axis=1).astype(np.float64) - palm
    r = np.hypot(v[:, 0], v[:, 1])
    up = np.array([0.0, -1.0])
    cone = np.abs(_signed_angle(up, v)) <= up_cone_deg
    if not cone.any():
        return None
    i = np.argmax(np.where(cone, r, -1.0))
    tip = palm + v[i]
    axis = v[i] / max(r[i], 1e-9)
    angle = _signed_angle(axis, v)
    sector = (angle >= thumb_sector_deg[0]) & (angle <= thumb_sector_deg[1])
    if not sector.any():
        return None
    j = np.argmax(np.where(sector, r, -1.0))
    thumb = palm + v[j]
    capitate = palm - capitate_back * (tip - palm)
    return np.stack([tip, thumb, capitate]).astype(np.float32)
