"""At which canvas size does the registration neither enlarge nor shrink a dataset's hands?

    python -m reproductions.iglovikov18.native_scale ../shared/data/rsna-512 [--limit N] [--csv FILE]

The registration maps three key points of a radiograph onto fixed canvas positions; the affine map's
linear scale is how many canvas pixels one source pixel becomes. The canvas height (`data.image_size`)
at which that scale is 1 is a hand's "native" canvas height: a larger canvas enlarges the hand beyond
the pixels its radiograph holds. Measured two ways on the key points read off each image's bootstrap
mask (`masks.keypoints_from_mask`, as the key-point stage's targets): from the area of the key-point
triangle (the affine map's determinant) and from the middle-finger-tip-to-capitate distance. Used to
choose the `r512` canvas (config.py; README, "512-px radiographs (r512)").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _triangle_area(points) -> float:
    p = np.asarray(points, np.float64)
    return abs((p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[2, 0] - p[0, 0]) * (p[1, 1] - p[0, 1])) / 2.0


def native_canvas_height(keypoints_px, config) -> dict:
    """{"area": h, "tip_capitate": h}: the canvas heights at which the registration of a hand with
    these key points ([3, 2] (x, y) source pixels, KEYPOINT_NAMES order) keeps its pixel size."""
    canvas = np.asarray(config.registration.keypoints, np.float64)   # full-scale canvas positions
    full_height = float(config.registration.canvas[0])
    kp = np.asarray(keypoints_px, np.float64)
    area = np.sqrt(_triangle_area(kp) / _triangle_area(canvas))
    tip_capitate = np.hypot(*(kp[0] - kp[2])) / np.hypot(*(canvas[0] - canvas[2]))
    return {"area": float(area * full_height), "tip_capitate": float(tip_capitate * full_height)}


def measure_folder(folder, config, limit=None):
    """(table of id, height_px and the native heights over folder/images/*.png, how many images gave no
    key points); `config` a keypoints config (its canvas and key-point heuristic)."""
    import cv2
    import pandas as pd

    from reproductions.iglovikov18 import masks
    seg = {"blur_sigma": 0.01, "close_size": 0.03}  # the bootstrap the segment and key-point stages use (config.py)
    h = config.keypoints.heuristic
    paths = sorted(Path(folder, "images").glob("*.png"))[:limit]
    rows, missing = [], 0
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        kp = masks.keypoints_from_mask(masks.bootstrap_mask(image, **seg), capitate_back=float(h["capitate_back"]),
                                       thumb_sector_deg=tuple(h["thumb_sector_deg"]))
        if kp is None:
            missing += 1
            continue
        rows.append({"id": path.stem, "height_px": image.shape[0], **native_canvas_height(kp, config)})
    return pd.DataFrame(rows), missing


def main(argv=None, log=print):
    from reproductions.iglovikov18.config import get_config
    p = argparse.ArgumentParser(prog="python -m reproductions.iglovikov18.native_scale", description=__doc__.split("\n")[0])
    p.add_argument("folder", help="a folder dataset (images/*.png), e.g. ../shared/data/rsna-512")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (by name)")
    p.add_argument("--csv", default=None, help="also write the per-image table here")
    args = p.parse_args(argv)
    config = get_config("keypoints")  # the canvas (registration) and the key-point heuristic
    table, missing = measure_folder(args.folder, config, args.limit)
    if table.empty:
        log(f"error: no image of {args.folder}/images gave key points")
        return 2
    log(f"{len(table)} images with key points ({missing} without) in {args.folder}")
    for column in ("area", "tip_capitate"):
        q = table[column].quantile([0.1, 0.25, 0.5, 0.75, 0.9]).round(0).astype(int).tolist()
        log(f"native canvas height from the key points' {column.replace('_', '-')}: 10/25/50/75/90th percentile {q} px")
    if args.csv:
        from common import io
        io.atomic_to_csv(table, Path(args.csv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
