"""The README's figure: a real radiograph, its hand crop after CLAHE with the 49 patch centres, the patches.

    python -m reproductions.rsna17_second.figure [--image PATH] [--variant V] [--out PNG]

Defaults: ../shared/data/rsna-sample/images/1519.png (a raw RSNA training film, 379 x 512 px
as stored there) at the paper setting (512-px crop, 128-px patches, stride 64), written to
results/rsna17_second/patch_grid.png. The figure is drawn by the same functions the
pipeline runs (`preprocessing.hand_box`, `square_box`, `crop_resize_clahe_array`,
`patch_centres`, `patch_origins`), on a matplotlib Figure with the Agg canvas (never pyplot),
and written atomically (common.io).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from common import images, io
from common.provenance import REPO_ROOT
from reproductions.rsna17_second import preprocessing as pp
from reproductions.rsna17_second.config import VARIANTS, get_config

DEFAULT_IMAGE = REPO_ROOT.parent / "shared" / "data" / "rsna-sample" / "images" / "1519.png"
DEFAULT_OUT = REPO_ROOT / "results" / "rsna17_second" / "patch_grid.png"


def draw_patch_grid(image_path, out_path, variant: str = ""):
    """Draws the three panels for `image_path` with the `variant` config and writes `out_path` (PNG)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    data = get_config(variant).data
    film = images.read_image(image_path)
    box, found = pp.hand_box(film, **data.hand_crop)
    top, left, side = pp.square_box(box, data.hand_crop["margin"])
    hand = pp.crop_resize_clahe_array(film, size=data.image_size, hand_crop=data.hand_crop, clahe=data.clahe,
                                      name=str(image_path))
    size, patch, grid = data.image_size, data.patch_size, data.patch_grid
    stride = pp.patch_stride(size, patch, grid)
    centres = pp.patch_centres(size, patch, grid)
    origins = pp.patch_origins(size, patch, grid)

    fig = Figure(figsize=(13.5, 5.0), dpi=110)
    axes = fig.subplots(1, 3)
    ax = axes[0]
    ax.imshow(film, cmap="gray", vmin=0, vmax=255)
    y0, x0, y1, x1 = box
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#E69F00", lw=1.5,
                           label="largest component" if found else "no hand found: whole film"))
    ax.add_patch(Rectangle((left, top), side, side, fill=False, ec="#56B4E9", lw=1.5, ls="--",
                           label=f"square crop (+{data.hand_crop['margin']:.0%} margin)"))
    ax.set_xlim(min(0, left) - 0.5, max(film.shape[1], left + side) - 0.5)  # show the zero padding too
    ax.set_ylim(max(film.shape[0], top + side) - 0.5, min(0, top) - 0.5)
    ax.set_facecolor("black")
    ax.set_title(f"1. film {film.shape[1]} x {film.shape[0]} px: hand box", fontsize=10)
    ax.legend(loc="lower center", fontsize=7, framealpha=0.8)

    ax = axes[1]
    ax.imshow(hand, cmap="gray", vmin=0, vmax=255)
    ax.plot(centres[:, 0], centres[:, 1], "o", ms=3.5, color="#D55E00", label="49 patch centres")
    for k, colour in ((0, "#009E73"), (1, "#56B4E9"), (grid, "#CC79A7")):  # three neighbours: the overlap
        y, x = origins[k]
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), patch, patch, fill=False, ec=colour, lw=1.8,
                               label=f"patch {k} (row {k // grid}, col {k % grid})"))
    ax.set_xlim(-0.5, size - 0.5)
    ax.set_ylim(size - 0.5, -0.5)
    ax.set_title(f"2. crop resized to {size} px + CLAHE (clip {data.clahe['clip_limit']:g}, "
                 f"{data.clahe['tile_grid']}x{data.clahe['tile_grid']} tiles);\n"
                 f"{grid}x{grid} grid of {patch}-px patches, stride {stride} (overlap {patch - stride} px)", fontsize=9)
    ax.legend(loc="lower center", fontsize=7, framealpha=0.8)

    gap = max(1, patch // 16)
    mosaic = np.full((grid * (patch + gap) - gap,) * 2, 255, np.uint8)
    for k, (y, x) in enumerate(origins):
        r, c = divmod(k, grid)
        mosaic[r * (patch + gap):r * (patch + gap) + patch, c * (patch + gap):c * (patch + gap) + patch] = \
            hand[y:y + patch, x:x + patch]
    axes[2].imshow(mosaic, cmap="gray", vmin=0, vmax=255)
    axes[2].set_title("3. the 49 patches, row-major: 49 training examples\nof the sex's ResNet-50", fontsize=9)
    for a in axes:
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle(f"rsna17_second preprocessing ({variant or 'paper'} setting) on {Path(image_path).name}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    io.atomic_savefig(fig, out_path)
    return Path(out_path)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m reproductions.rsna17_second.figure", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=str(DEFAULT_IMAGE), help="a radiograph (PNG, JPEG, DICOM)")
    parser.add_argument("--variant", default="", choices=VARIANTS, help="config variant (default: the paper's)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="where to write the PNG")
    args = parser.parse_args(argv)
    if not Path(args.image).exists():
        print(f"error: no image at {args.image} (the default needs ../shared/data/rsna-sample); pass --image",
              file=sys.stderr)
        return 2
    print(f"Wrote {draw_patch_grid(args.image, args.out, args.variant)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
