"""Figures of the attention over the radiograph: one image (`predict --explain`), or a sheet across age bands.

Drawn as common/evaluation.py draws its plots: on `matplotlib.figure.Figure` objects (the Agg
canvas, no pyplot state), every file written atomically (`common.io.atomic_savefig`). The
radiograph is the model's own input (letterboxed, grey); the attention (`attention.smooth`, at
the backbone grid's resolution) is drawn over it in a heat colour map, its opacity rising with
the attention, scaled to each image's maximum, or to 3 x the uniform level when the map is
flatter than that (FLAT): a near-uniform map shows as a faint even tint, not as a contrast
stretched from noise. How peaked each map is, the regions table says (`attention.spread`).

PNGs are stored as 256-colour palette images, as common/evaluation.py stores its plots.
"""
from io import BytesIO
from pathlib import Path

import numpy as np

from common.io import atomic_savefig, atomic_write_bytes

DPI = 110
CMAP = "inferno"
ALPHA = 0.65  # opacity at the attention's maximum
FLAT = 3.0  # the colour scale tops out at the map's maximum, or at FLAT x its mean when the map is flatter


def _figure(figsize):
    from matplotlib.figure import Figure  # the Agg canvas is attached on savefig; no pyplot state
    return Figure(figsize=figsize, dpi=DPI, layout="constrained")


def colour_scale(attention) -> np.ndarray:
    """The map in [0, 1] as drawn: over its maximum, or over FLAT x its mean when that is larger."""
    attention = np.asarray(attention, np.float64)
    peak = max(attention.max(), FLAT * attention.mean())
    return attention / peak if peak > 0 else attention


def draw(ax, image, attention, title: str = "", fontsize: float = 7.0):
    """The radiograph [S, S] (uint8 or [0, 1]) with `attention` [S, S] over it, on a matplotlib Axes."""
    image = np.asarray(image)
    image = image[..., 0] if image.ndim == 3 else image
    from matplotlib import colormaps
    attention = np.asarray(attention, np.float64)
    scaled = colour_scale(attention)
    heat = colormaps[CMAP](scaled)
    heat[..., 3] = ALPHA * scaled  # opaque where the attention is, the radiograph plain where it is not
    ax.imshow(image, cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else 1.0, interpolation="nearest")
    ax.imshow(heat, interpolation="bilinear")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=fontsize)


def _save(fig, path) -> Path:
    """PNG as a 256-colour palette image (a third of the size; the figure looks the same), atomically;
    other formats as matplotlib writes them."""
    path = Path(path)
    try:
        if path.suffix.lower() != ".png":
            atomic_savefig(fig, path, dpi=DPI)
            return path
        from PIL import Image  # a dependency of matplotlib
        buffer = BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
        buffer.seek(0)
        with Image.open(buffer) as image:
            palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        out = BytesIO()
        palette.save(out, format="PNG", optimize=True)
        atomic_write_bytes(path, out.getvalue())
        return path
    finally:
        fig.clear()


def write_overlay(path, image, attention, title: str = "") -> Path:
    """One radiograph with its attention, as a PNG (atomically). Returns the path."""
    fig = _figure((3.2, 3.5 if title else 3.2))
    draw(fig.add_subplot(1, 1, 1), image, attention, title, fontsize=8)
    return _save(fig, path)


def write_sheet(path, panels, title: str = "") -> Path:
    """A sheet of overlays: panels = [(column label, image, attention, panel title)], placed column by
    column in the order given (a column per label: e.g. one per age band, its images top to bottom).

    Returns the path. An empty sheet is refused (ValueError): there is nothing to draw."""
    if not panels:
        raise ValueError("no panels to draw")
    labels = list(dict.fromkeys(label for label, *_ in panels))
    by_label = {label: [p for p in panels if p[0] == label] for label in labels}
    n_cols = len(labels)
    n_rows = max(len(v) for v in by_label.values())
    fig = _figure((2.3 * n_cols, 2.5 * n_rows + (0.4 if title else 0.0)))
    axes = np.asarray(fig.subplots(n_rows, n_cols, squeeze=False))
    for ax in axes.ravel():
        ax.set_axis_off()
    for col, label in enumerate(labels):
        for row, (_, image, attention, panel_title) in enumerate(by_label[label]):
            draw(axes[row, col], image, attention, panel_title)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)
