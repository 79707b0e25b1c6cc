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


# Outline colours of the hand regions (drawn over the heat map, so none of the inferno map's own hues)
OUTLINE_COLOURS = ("#00e5ff", "#76ff03", "#2979ff", "#e040fb", "#ff9100", "#ffd600")


def draw_outlines(ax, outlines: dict, colours: dict):
    """The edge of each region ({name: [S, S] bool}) as a thin line in its colour."""
    for name, where in outlines.items():
        if where is not None and np.any(where):
            ax.contour(np.asarray(where, np.float32), levels=[0.5], colors=[colours[name]], linewidths=0.9)


def write_sheet(path, panels, title: str = "", outline_titles: dict | None = None) -> Path:
    """A sheet of overlays: panels = [(column label, image, attention, panel title[, outlines])], placed
    column by column in the order given (a column per label: e.g. one per age band, its images top to
    bottom). outlines, where given: {region: [S, S] bool}, each region's edge drawn over the attention in
    its own colour, named in a legend by outline_titles ({region: title}, in legend order).

    Returns the path. An empty sheet is refused (ValueError): there is nothing to draw."""
    if not panels:
        raise ValueError("no panels to draw")
    outline_titles = outline_titles or {}
    colours = dict(zip(outline_titles, OUTLINE_COLOURS))
    labels = list(dict.fromkeys(label for label, *_ in panels))
    by_label = {label: [p for p in panels if p[0] == label] for label in labels}
    n_cols = len(labels)
    n_rows = max(len(v) for v in by_label.values())
    legend = bool(colours) and any(len(p) > 4 and p[4] for p in panels)
    width = 2.3 * n_cols  # inches
    if title:  # wrapped to the sheet's width (~14 characters per inch at 9 pt), so a narrow sheet keeps all of it
        import textwrap
        title = textwrap.fill(title, width=int(14 * width))
    legend_cols = max(1, min(len(colours), int(width // 2.2)))  # ~2.2 inches per legend entry at 7 pt
    legend_rows = -(-len(colours) // legend_cols) if legend else 0
    fig = _figure((width, 2.5 * n_rows + 0.2 * (title.count("\n") + 2 if title else 0) + 0.2 * legend_rows))
    axes = np.asarray(fig.subplots(n_rows, n_cols, squeeze=False))
    for ax in axes.ravel():
        ax.set_axis_off()
    for col, label in enumerate(labels):
        for row, (_, image, attention, panel_title, *outlines) in enumerate(by_label[label]):
            draw(axes[row, col], image, attention, panel_title)
            if outlines and outlines[0]:
                draw_outlines(axes[row, col], {n: outlines[0].get(n) for n in colours}, colours)
    if legend:
        from matplotlib.lines import Line2D
        fig.legend([Line2D([], [], color=c, linewidth=2) for c in colours.values()],
                   [outline_titles[n] for n in colours], loc="outside lower center", ncols=legend_cols,
                   fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)
