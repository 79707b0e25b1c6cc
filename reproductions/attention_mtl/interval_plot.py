"""The interval plot: what the conformal intervals of one evaluation look like, image by image.

`evaluate` writes `<evaluation folder>/intervals.png` beside metrics.md (attention_mtl.task.extra_metrics);
for an evaluation already on disk, the figure is redrawn from its predictions.csv alone (no model, no
data), e.g.

    python -m reproductions.attention_mtl.interval_plot results/attention_mtl/<run>/test

Three panels, read left to right:
  1. every test radiograph, sorted by its estimate: the 95 / 90 / 80 % intervals as nested bars
     (lighter = wider), the estimate, and the reference age, drawn red where it falls outside the
     90 % interval;
  2. coverage against the nominal level, with the band an exactly calibrated method lands in 95 %
     of the time on this many images (binomial): with 89 test images one image is 1.1 points, so
     "87-93 %" is a statement about the band, not only the dot;
  3. the predicted scale against the absolute error, with their Spearman correlation: whether the
     network's own spread says which radiographs it gets wrong (a point head has one scale for all,
     and the panel says so).
"""
import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from common.evaluation import new_figure
from common.io import atomic_savefig
from reproductions.attention_mtl import conformal

FILE_NAME = "intervals.png"
BAR_COLOURS = {"95": "#c6dbef", "90": "#6baed6", "80": "#2171b5"}  # lighter = wider (Blues)


def binomial_range(n: int, p: float, mass: float = 0.95) -> tuple:
    """The central `mass` range of the share of n Bernoulli(p) successes: where the empirical coverage of
    an exactly calibrated method falls with probability >= mass. Exact, in log space (n in the thousands)."""
    ks = np.arange(n + 1)
    log_pmf = np.array([math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) for k in ks])
    log_pmf += ks * math.log(p) + (n - ks) * math.log1p(-p)
    cdf = np.cumsum(np.exp(log_pmf))
    tail = (1.0 - mass) / 2.0
    low = int(np.searchsorted(cdf, tail))            # smallest k with P(K <= k) >= tail
    high = int(np.searchsorted(cdf, 1.0 - tail))     # smallest k with P(K <= k) >= 1 - tail
    return low / n, high / n


def _levels(df: pd.DataFrame) -> list:
    """The levels (as "80", "90", "95") whose bounds are in the table and finite for every image."""
    out = []
    for level in conformal.LEVELS:
        name = conformal.level_name(level)
        lo, hi = f"lower_{name}", f"upper_{name}"
        if lo in df and hi in df and np.isfinite(df[lo].to_numpy(float)).all() and np.isfinite(df[hi].to_numpy(float)).all():
            out.append(name)
    return out


def plot_intervals(df: pd.DataFrame, path, title: str = "") -> dict | None:
    """Draws the three panels from a predictions table (boneage_true, boneage_pred, scale_months and the
    lower_/upper_<level> columns) into `path`, atomically. Returns what it drew (coverage per level, the
    images outside the 90 % interval, the binomial bands), or None, writing nothing, when the table has
    no finite interval (an uncalibrated run)."""
    levels = _levels(df)
    if not levels or len(df) == 0:
        return None
    d = df.sort_values("boneage_pred", kind="stable").reset_index(drop=True)
    y = d["boneage_true"].to_numpy(float)
    mu = d["boneage_pred"].to_numpy(float)
    x = np.arange(len(d))
    n = len(d)

    fig, (ax_bars, ax_cov, ax_scale) = new_figure((15, 4.6), 1, 3)
    fig.get_layout_engine().set(wspace=0.06)
    width = float(np.clip(300.0 / n, 0.6, 4.0))  # bars stay visible from 16 to ~1,000 images
    for name in sorted(levels, key=int, reverse=True):  # widest first, narrower drawn over it
        ax_bars.vlines(x, d[f"lower_{name}"], d[f"upper_{name}"], colors=BAR_COLOURS.get(name, "grey"),
                       linewidth=width, label=f"{name} % interval")
    ax_bars.scatter(x, mu, s=4, c="black", marker="_", linewidths=0.8, label="estimate", zorder=3)
    reference = "90" if "90" in levels else levels[-1]
    outside = (y < d[f"lower_{reference}"].to_numpy(float)) | (y > d[f"upper_{reference}"].to_numpy(float))
    size = float(np.clip(400.0 / n ** 0.5, 2.0, 20.0))
    ax_bars.scatter(x[~outside], y[~outside], s=size, c="#238b45", marker="o", linewidths=0, zorder=4,
                    label=f"reference, inside the {reference} % interval")
    ax_bars.scatter(x[outside], y[outside], s=size * 1.6, c="#cb181d", marker="x", linewidths=0.9, zorder=5,
                    label=f"reference, outside ({int(outside.sum())} of {n})")
    ax_bars.set(xlabel=f"test radiographs, sorted by estimate (n = {n})", ylabel="bone age (months)",
                title="Interval per radiograph")
    ax_bars.legend(loc="upper left", fontsize=7, frameon=False)

    report = conformal.report(df, levels=[int(name) / 100 for name in levels])
    nominal = np.array([int(name) / 100 for name in levels])
    coverage = np.array([report["levels"][name]["coverage"] for name in levels])
    bands = [binomial_range(n, p) for p in nominal]
    grid = np.linspace(min(nominal) - 0.05, 1.0, 50)
    ax_cov.plot(grid, grid, color="grey", linewidth=0.8, linestyle="--", label="coverage = nominal")
    ax_cov.errorbar(nominal, nominal, yerr=[nominal - [b[0] for b in bands], [b[1] for b in bands] - nominal],
                    fmt="none", ecolor="#9e9ac8", elinewidth=6, alpha=0.6,
                    label=f"95 % range of an exact method, n = {n}")
    ax_cov.scatter(nominal, coverage, s=36, c="black", zorder=3, label="this run")
    for p, c, name in zip(nominal, coverage, levels):
        width_months = report["levels"][name]["mean_width_months"]
        ax_cov.annotate(f"{100 * c:.1f} %\n(mean width {width_months:.0f} mo)", (p, c), textcoords="offset points",
                        xytext=(8, -4), fontsize=7)
    ax_cov.set(xlabel="nominal level", ylabel="share of test radiographs inside their interval",
               title="Coverage", xlim=(min(nominal) - 0.05, 1.0), ylim=(min(min(nominal), coverage.min()) - 0.08, 1.01))
    ax_cov.legend(loc="upper left", fontsize=7, frameon=False)

    abs_error = np.abs(mu - y)
    scale = d[conformal.SCALE_COLUMN].to_numpy(float)
    ax_scale.scatter(scale, abs_error, s=size, c="#6a51a3", alpha=0.6, linewidths=0)
    if report["constant_scale"]:
        note = f"one scale for every image ({scale[0]:.2f} months: a point head);\nno spread to rank"
    else:
        rho = report["spearman_scale_vs_abs_error"]
        note = f"Spearman {rho:.2f}"
    ax_scale.text(0.02, 0.97, note, transform=ax_scale.transAxes, va="top", fontsize=8)
    ax_scale.set(xlabel="predicted scale (months)", ylabel="absolute error (months)",
                 title="Does the spread track the error?")
    if title:
        fig.suptitle(title, fontsize=10)
    atomic_savefig(fig, path)
    return {"path": str(path), "images": n, "levels": levels,
            "coverage": dict(zip(levels, coverage.tolist())), "bands": dict(zip(levels, bands)),
            "outside": {"level": reference, "images": int(outside.sum())}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Redraw intervals.png of an attention_mtl evaluation from its predictions.csv.")
    parser.add_argument("evaluation", type=Path, help="an evaluation folder, e.g. results/attention_mtl/<run>/test")
    args = parser.parse_args(argv)
    csv = args.evaluation / "predictions.csv"
    if not csv.is_file():
        parser.error(f"{csv} does not exist: pass an evaluation folder (the one holding predictions.csv and metrics.md).")
    df = pd.read_csv(csv)
    missing = [c for c in ("boneage_true", "boneage_pred", conformal.SCALE_COLUMN) if c not in df]
    if missing:
        parser.error(f"{csv} lacks the column(s) {missing}: it is not an attention_mtl evaluation.")
    drawn = plot_intervals(df, args.evaluation / FILE_NAME, title=f"attention_mtl intervals: {args.evaluation}")
    if drawn is None:
        parser.error(f"{csv} has no finite interval: the run was never calibrated (`evaluate` fits the conformal "
                     "quantiles on the validation split first).")
    print(f"Wrote {drawn['path']}: {drawn['images']} images, "
          + ", ".join(f"{k} % coverage {100 * v:.1f} %" for k, v in drawn["coverage"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
