"""README figures, drawn from trained runs on the real radiographs of ../shared/data/rsna-sample.

    python -m reproductions.iglovikov18 figures --segment-run DIR --keypoints-run DIR [--sample DIR]

* masks_real.png: raw radiographs with the bootstrap mask (the iteration's seed) and the U-Net's.
* registered_real.png: the key points found on each radiograph, and its registered canvas with
  the three regions the age networks see.
* regions_on_registered.png: the regions drawn on radiographs registered by the authors' group
  (the `registered_by_source` images of rsna-sample), to check the boxes against real anatomy.

Figures use matplotlib Figure objects (no pyplot state) and are written atomically.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from common import io
from reproductions.iglovikov18 import config as ig_config
from reproductions.iglovikov18 import masks
from reproductions.iglovikov18 import preprocessing as pp

COLOURS = {"hand": "#009E73", "carpal": "#D55E00", "metacarpal": "#0072B2"}
KP_COLOURS = ("#E69F00", "#56B4E9", "#F0E442")


def sample_ids(sample_dir, variant_prefix="raw", n=8):
    manifest = pd.read_csv(Path(sample_dir) / "manifest.csv", dtype={"id": str})
    return list(manifest[manifest["variant"].str.startswith(variant_prefix)]["id"])[:n]


def _read(sample_dir, i):
    from common import images
    return images.read_image(Path(sample_dir) / "images" / f"{i}.png")


def _boxes(ax, config):
    from matplotlib.patches import Rectangle
    for region in ig_config.REGIONS:
        y0, x0, h, w = pp.region_box(config, region)
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), w, h, fill=False, ec=COLOURS[region], lw=1.0))


def masks_figure(chain, sample_dir, out, n=8):
    from matplotlib.figure import Figure
    ids = sample_ids(sample_dir, "raw", n)
    imgs = [_read(sample_dir, i) for i in ids]
    unet = chain.masks(imgs)
    fig = Figure(figsize=(1.7 * len(ids), 2.6))
    for k, (i, im, m) in enumerate(zip(ids, imgs, unet)):
        ax = fig.add_subplot(1, len(ids), k + 1)
        ax.imshow(im, cmap="gray")
        ax.contour((masks.bootstrap_mask(im) > 0).astype(float), levels=[0.5], colors="#56B4E9", linewidths=0.8)
        ax.contour((m > 0).astype(float), levels=[0.5], colors="#D55E00", linewidths=0.9)
        ax.set_title(i, fontsize=7)
        ax.set_axis_off()
    fig.suptitle(f"Hand masks on real radiographs (rsna-sample). Blue: bootstrap (Otsu + largest piece); "
                 f"orange: U-Net of {Path(chain.segment_run).name}", fontsize=7)
    io.atomic_savefig(fig, out, dpi=110)


def registered_figure(chain, age_config, sample_dir, out, n=8):
    from matplotlib.figure import Figure
    ids = sample_ids(sample_dir, "raw", n)
    imgs = [_read(sample_dir, i) for i in ids]
    canvases, hand_masks, keypoints = chain.register(imgs, age_config)
    fig = Figure(figsize=(1.5 * len(ids), 4.6))
    for k, (i, im, c, kp) in enumerate(zip(ids, imgs, canvases, keypoints)):
        ax = fig.add_subplot(2, len(ids), k + 1)
        ax.imshow(im, cmap="gray")
        for (x, y), col in zip(kp, KP_COLOURS):
            ax.plot([x], [y], "o", ms=3, color=col)
        ax.set_title(i, fontsize=7)
        ax.set_axis_off()
        ax = fig.add_subplot(2, len(ids), len(ids) + k + 1)
        ax.imshow(c, cmap="gray", vmin=0, vmax=255)
        _boxes(ax, age_config)
        for (x, y), col in zip(pp.canvas_keypoints(age_config), KP_COLOURS):
            ax.plot([x], [y], "+", ms=4, color=col)
        ax.set_axis_off()
    fig.suptitle("Key points found (top: middle finger tip, thumb tip, capitate) and the registered canvas "
                 f"{pp.canvas_hw(age_config)} with the three regions (bottom)\nsegment {Path(chain.segment_run).name}, "
                 f"keypoints {Path(chain.keypoints_run).name}", fontsize=7)
    io.atomic_savefig(fig, out, dpi=110)


def regions_figure(age_config, sample_dir, out, n=6):
    """The regions on radiographs that the authors' group registered (1600 x 2080 canvases, resized)."""
    import cv2
    from matplotlib.figure import Figure
    ids = sample_ids(sample_dir, "registered", n)
    hw = pp.canvas_hw(age_config)
    fig = Figure(figsize=(1.6 * len(ids), 2.6))
    for k, i in enumerate(ids):
        canvas = cv2.resize(_read(sample_dir, i), (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
        ax = fig.add_subplot(1, len(ids), k + 1)
        ax.imshow(canvas, cmap="gray")
        _boxes(ax, age_config)
        for (x, y), col in zip(pp.canvas_keypoints(age_config), KP_COLOURS):
            ax.plot([x], [y], "+", ms=5, color=col)
        ax.set_title(i, fontsize=7)
        ax.set_axis_off()
    fig.suptitle("The three regions and the key points' canvas positions on radiographs registered by the authors' "
                 "group\n(green: whole hand, orange: carpal bones, blue: metacarpals + proximal phalanges)", fontsize=7)
    io.atomic_savefig(fig, out, dpi=110)


def main(argv, log=print):
    from common import results
    from common import train as common_train
    from reproductions.iglovikov18 import chain as ig_chain
    from reproductions.iglovikov18 import commands
    p = argparse.ArgumentParser(prog="python -m reproductions.iglovikov18 figures")
    commands.add_chain_flags(p)
    shared = Path(os.environ.get("BONEAGE_SHARED_DATA", results.REPO_ROOT.parent / "shared" / "data"))
    p.add_argument("--sample", default=str(shared / "rsna-sample"), help="folder of rsna-sample (manifest.csv, images/)")
    p.add_argument("--variant", default="thumbs", help="base variant whose canvas is drawn")
    p.add_argument("--out", default=str(Path(results.RESULTS_DIR) / "iglovikov18" / "figures"))
    args = p.parse_args(argv)
    if not (Path(args.sample) / "manifest.csv").exists():
        raise SystemExit(f"error: no rsna-sample at {args.sample} (pass --sample DIR)")
    out = Path(args.out)
    age_config = ig_config.hand_config(args.variant)
    regions_figure(age_config, args.sample, out / "regions_on_registered.png")
    data_name = common_train.dataset_name(args.data, args.data_dir, log)  # names the default runs; nothing is built
    chain = ig_chain.Chain(*commands.chain_runs(args, data_name, args.variant), log=log)
    masks_figure(chain, args.sample, out / "masks_real.png")
    registered_figure(chain, age_config, args.sample, out / "registered_real.png")
    log(f"Wrote figures to {out}")
    return 0
