"""Evaluation of bone age predictions with the metrics and plots the BAA literature reports.

All ages are in months. The error of one image is `pred - ref` (positive: the model says the
skeleton is older than the reference reading). Reported metrics:

* mae, rmse, median_ae: mean / root-mean-square / median of the absolute error;
* bias: mean signed error, mean(pred - ref);
* within_6 / within_12 / within_24: share (0..1) of images with |pred - ref| <= 6 / 12 / 24 months.

Confidence intervals are percentile bootstraps over images, computed vectorised (one resample
index matrix per chunk of bootstrap replicates, never a Python loop over replicates).
Groups: by sex, and by age band of the *reference* age (boneage_true / 12), bands
[0, 2), [2, 6), [6, 10), [10, 14), [14, 19] years, where the last band also takes everything
from 14 years up (RSNA goes to 228 months; 240 months, 20 y, still lands there) and the first
band anything below 2 years.

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas, never through
pyplot, so nothing is registered in pyplot's global figure list and nothing leaks; every file
is written atomically through `common.io`.
"""
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from common.io import (atomic_savefig, atomic_to_csv, atomic_write_bytes, atomic_write_json,
                       atomic_write_text)

AGE_BANDS_YEARS = ((0, 2), (2, 6), (6, 10), (10, 14), (14, 19))
AGE_BAND_LABELS = tuple(f"{lo}-{hi}" for lo, hi in AGE_BANDS_YEARS)
METRIC_NAMES = ("mae", "rmse", "median_ae", "bias", "within_6", "within_12", "within_24")
REQUIRED_COLUMNS = ("id", "boneage_true", "boneage_pred", "male")
WITHIN_THRESHOLDS = (6, 12, 24)
SEXES = ("female", "male")

DPI = 110
SEX_COLOURS = {"female": "#D55E00", "male": "#0072B2"}  # Okabe-Ito vermillion / blue
# |error| <= k counts as "within k" with this slack, so 100.1 - 94.1 (= 6.000000000000001) is within 6.
_WITHIN_EPS = 1e-9
# Largest resample matrix (n_boot_chunk x n) held at once: 2M float64 = 16 MB.
_MAX_BOOT_ELEMENTS = 2_000_000


# ----------------------------------------------------------------------------------- metrics

def _as_1d_pair(y_true, y_pred, names=("y_true", "y_pred")):
    a = np.asarray(y_true, dtype=float).reshape(-1)
    b = np.asarray(y_pred, dtype=float).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} differ in length: {a.size} vs {b.size}")
    return a, b


def _metrics_from_errors(err):
    """Metrics of signed errors `err` along the last axis; returns {name: array of err.shape[:-1]}."""
    abs_err = np.abs(err)
    out = {
        "mae": abs_err.mean(axis=-1),
        "rmse": np.sqrt(np.square(err).mean(axis=-1)),
        "median_ae": np.median(abs_err, axis=-1),
        "bias": err.mean(axis=-1),
    }
    for k in WITHIN_THRESHOLDS:
        out[f"within_{k}"] = (abs_err <= k + _WITHIN_EPS).mean(axis=-1)
    return out


def point_metrics(y_true, y_pred) -> dict:
    """Point metrics in months (see the module docstring); NaN for every metric when empty."""
    y_true, y_pred = _as_1d_pair(y_true, y_pred)
    if y_true.size == 0:
        return {name: float("nan") for name in METRIC_NAMES}
    values = _metrics_from_errors(y_pred - y_true)
    return {name: float(values[name]) for name in METRIC_NAMES}


def _resample_chunks(rng, n, n_boot):
    """Yields index matrices (rows = bootstrap replicates) covering n_boot rows in total."""
    rows = max(1, _MAX_BOOT_ELEMENTS // max(n, 1))
    done = 0
    while done < n_boot:
        k = min(rows, n_boot - done)
        yield rng.integers(0, n, size=(k, n))
        done += k


def _check_boot_args(n_boot, ci):
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, received {n_boot}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), received {ci}")


def bootstrap_metrics(y_true, y_pred, n_boot=1000, seed=0, ci=0.95) -> dict:
    """Point metrics with percentile-bootstrap CIs over images.

    Returns {name: {"value", "ci_low", "ci_high"}} for every name in METRIC_NAMES. With no images
    everything is NaN; with one image every resample is that image, so the CI collapses onto the value.
    """
    _check_boot_args(n_boot, ci)
    y_true, y_pred = _as_1d_pair(y_true, y_pred)
    point = point_metrics(y_true, y_pred)
    n = y_true.size
    if n == 0:
        nan = float("nan")
        return {name: {"value": nan, "ci_low": nan, "ci_high": nan} for name in METRIC_NAMES}
    err = y_pred - y_true
    rng = np.random.default_rng(seed)
    parts = {name: [] for name in METRIC_NAMES}
    for idx in _resample_chunks(rng, n, int(n_boot)):
        values = _metrics_from_errors(err[idx])
        for name in METRIC_NAMES:
            parts[name].append(values[name])
    alpha = (1.0 - ci) / 2.0
    out = {}
    for name in METRIC_NAMES:
        lo, hi = np.quantile(np.concatenate(parts[name]), [alpha, 1.0 - alpha])
        out[name] = {"value": point[name], "ci_low": float(lo), "ci_high": float(hi)}
    return out


def paired_bootstrap_mae_difference(y_true, pred_a, pred_b, n_boot=2000, seed=0) -> dict:
    """MAE of method A minus MAE of method B on the same images, with a paired bootstrap.

    Images are resampled jointly for both methods. The CI is the 95% percentile interval of the
    bootstrap differences; the two-sided p-value is 2 * min(share of differences <= 0, share >= 0),
    with the usual +1 correction ((count + 1) / (n_boot + 1)) so it never reads exactly 0, capped
    at 1. Identical predictions give difference 0, CI (0, 0) and p 1.
    """
    _check_boot_args(n_boot, 0.95)
    y_true, pred_a = _as_1d_pair(y_true, pred_a, ("y_true", "pred_a"))
    _, pred_b = _as_1d_pair(y_true, pred_b, ("y_true", "pred_b"))
    n = y_true.size
    if n == 0:
        nan = float("nan")
        return {"n": 0, "mae_a": nan, "mae_b": nan, "difference": nan,
                "ci_low": nan, "ci_high": nan, "p_value": nan}
    abs_a, abs_b = np.abs(pred_a - y_true), np.abs(pred_b - y_true)
    mae_a, mae_b = float(abs_a.mean()), float(abs_b.mean())
    d = abs_a - abs_b
    rng = np.random.default_rng(seed)
    boot = np.concatenate([d[idx].mean(axis=1) for idx in _resample_chunks(rng, n, int(n_boot))])
    lo, hi = np.quantile(boot, [0.025, 0.975])
    n_le, n_ge = int(np.sum(boot <= 0)), int(np.sum(boot >= 0))
    p = min(1.0, 2.0 * (min(n_le, n_ge) + 1) / (boot.size + 1))
    return {"n": int(n), "mae_a": mae_a, "mae_b": mae_b, "difference": mae_a - mae_b,
            "ci_low": float(lo), "ci_high": float(hi), "p_value": float(p)}


# ------------------------------------------------------------------------ data frame checks

def _parse_male(values: pd.Series, ids: pd.Series) -> np.ndarray:
    mapping = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    out = np.zeros(len(values), dtype=bool)
    bad = []
    for i, v in enumerate(values.tolist()):
        if isinstance(v, (bool, np.bool_)):
            out[i] = bool(v)
        elif isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1):
            out[i] = bool(v)
        elif isinstance(v, str) and v.strip().lower() in mapping:
            out[i] = mapping[v.strip().lower()]
        else:
            bad.append(i)
    if bad:
        raise ValueError(f"column 'male' must hold 0/1 or booleans; {len(bad)} row(s) do not, "
                         f"ids: {_few(ids.iloc[bad].tolist())}")
    return out


def _few(items, k=20):
    items = list(items)
    return f"{items[:k]}" + (f" ... ({len(items)} in all)" if len(items) > k else "")


def prepare_predictions(df: pd.DataFrame) -> pd.DataFrame:
    """Validates the predictions frame; returns id, boneage_true/pred (float), male (bool), in input order."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, received {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"predictions are missing column(s) {missing}; expected columns "
                         f"{list(REQUIRED_COLUMNS)}, found {[str(c) for c in df.columns]}")
    ids = df["id"].reset_index(drop=True)
    numeric = {}
    for col in ("boneage_true", "boneage_pred"):
        try:
            numeric[col] = pd.to_numeric(df[col], errors="raise").astype(float).to_numpy()
        except (ValueError, TypeError) as e:
            raise ValueError(f"column {col!r} must be numeric (months): {e}") from None
        bad = ~np.isfinite(numeric[col])
        if bad.any():
            what = "predictions" if col == "boneage_pred" else "reference ages"
            raise ValueError(f"{int(bad.sum())} {what} ({col}) are NaN or infinite, ids: "
                             f"{_few(ids[bad].tolist())}")
    dup = ids.duplicated(keep=False)
    if dup.any():
        raise ValueError(f"ids must be unique (one row per image); duplicated: "
                         f"{_few(sorted(set(ids[dup].tolist()), key=str))}")
    return pd.DataFrame({"id": ids,
                         "boneage_true": numeric["boneage_true"],
                         "boneage_pred": numeric["boneage_pred"],
                         "male": _parse_male(df["male"].reset_index(drop=True), ids)})


def age_band_labels(months) -> np.ndarray:
    """Band label ("0-2", ..., "14-19") of each reference age in months, by AGE_BANDS_YEARS.

    Bands are [lo, hi) in years; ages below 2 y go to "0-2" and ages from 14 y up (228 and 240
    months included) to "14-19".
    """
    months = np.asarray(months, dtype=float).reshape(-1)
    inner_edges = np.array([lo * 12.0 for lo, _ in AGE_BANDS_YEARS[1:]])
    idx = np.searchsorted(inner_edges, months, side="right")
    return np.asarray(AGE_BAND_LABELS, dtype=object)[idx]


def evaluate_predictions(df, n_boot=1000, seed=0) -> dict:
    """Metrics with bootstrap CIs overall, by sex and by reference-age band.

    df columns: id, boneage_true, boneage_pred (months), male (0/1 or bool). Returns
    {"n", "overall", "by_sex": {sex: {"n", "metrics"}}, "by_age_band": {band: {"n", "metrics"}}};
    empty groups are present with n 0 and NaN metrics.
    """
    d = prepare_predictions(df)
    t, p = d["boneage_true"].to_numpy(), d["boneage_pred"].to_numpy()

    def group(mask):
        return {"n": int(mask.sum()), "metrics": bootstrap_metrics(t[mask], p[mask], n_boot, seed)}

    male = d["male"].to_numpy()
    bands = age_band_labels(t)
    return {
        "n": int(len(d)),
        "overall": bootstrap_metrics(t, p, n_boot, seed),
        "by_sex": {"female": group(~male), "male": group(male)},
        "by_age_band": {label: group(bands == label) for label in AGE_BAND_LABELS},
    }


# ---------------------------------------------------------------------------------- markdown

_METRIC_LABELS = {
    "mae": "MAE (months)",
    "rmse": "RMSE (months)",
    "median_ae": "Median absolute error (months)",
    "bias": "Bias, mean(pred − ref) (months)",
    "within_6": "Within ±6 months",
    "within_12": "Within ±12 months",
    "within_24": "Within ±24 months",
}


def _num(x):
    """float or None (None, NaN, missing all read as unavailable)."""
    if x is None:
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _fmt(name, x, signed=False):
    x = _num(x)
    if x is None:
        return "–"
    if name.startswith("within"):
        return f"{100 * x:.1f}%"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def _fmt_ci(name, m):
    signed = name == "bias"
    lo, hi = _fmt(name, m.get("ci_low"), signed), _fmt(name, m.get("ci_high"), signed)
    return "–" if lo == "–" or hi == "–" else f"[{lo}, {hi}]"


def _group_rows(groups, order, label_of):
    rows = []
    for key in order:
        g = groups.get(key)
        if g is None:
            continue
        m = g.get("metrics", {}) or {}
        mae, bias, w12 = m.get("mae", {}), m.get("bias", {}), m.get("within_12", {})
        mae_txt = _fmt("mae", mae.get("value"))
        if mae_txt != "–" and _fmt_ci("mae", mae) != "–":
            mae_txt += " " + _fmt_ci("mae", mae)
        rows.append(f"| {label_of(key)} | {g.get('n', 0)} | {mae_txt} | "
                    f"{_fmt('bias', bias.get('value'), signed=True)} | "
                    f"{_fmt('within_12', w12.get('value'))} |")
    return rows


def metrics_markdown(result: dict, title: str) -> str:
    """Readable markdown of an `evaluate_predictions` result (also one read back from metrics.json)."""
    lines = [f"# {title or 'Bone age evaluation'}", ""]
    lines.append(f"N = {result.get('n', 0)} images. Errors in months, prediction − reference; "
                 "95% confidence intervals by percentile bootstrap over images.")
    lines += ["", "## Overall", "", "| Metric | Value | 95% CI |", "|---|---:|---|"]
    overall = result.get("overall", {}) or {}
    for name in METRIC_NAMES:
        m = overall.get(name)
        if m is None:
            continue
        lines.append(f"| {_METRIC_LABELS[name]} | {_fmt(name, m.get('value'), name == 'bias')} | "
                     f"{_fmt_ci(name, m)} |")
    header = ["| {} | n | MAE (months) [95% CI] | Bias (months) | Within ±12 months |",
              "|---|---:|---|---:|---:|"]
    if result.get("by_sex"):
        lines += ["", "## By sex", "", header[0].format("Sex"), header[1]]
        lines += _group_rows(result["by_sex"], SEXES, str.capitalize)
    if result.get("by_age_band"):
        lines += ["", "## By reference age band", "", header[0].format("Age band (years)"), header[1]]
        order = list(AGE_BAND_LABELS) + [k for k in result["by_age_band"] if k not in AGE_BAND_LABELS]
        lines += _group_rows(result["by_age_band"], order, lambda k: k)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ plots

def new_figure(figsize, nrows=1, ncols=1, layout="constrained", squeeze=True):
    """A figure and its axes without pyplot (single runs here, comparisons in common/compare.py)."""
    from matplotlib.figure import Figure  # the Agg canvas is attached on savefig; no pyplot state

    fig = Figure(figsize=figsize, dpi=DPI, layout=layout)
    axes = fig.subplots(nrows, ncols, squeeze=squeeze)
    return fig, axes



def _save(fig, path):
    """Saves at DPI, atomically; PNGs as 256-colour palette images (a dense scatter of thousands of
    semi-transparent points stays well under 200 kB, and plots look the same)."""
    path = Path(path)
    try:
        if path.suffix.lower() != ".png":
            atomic_savefig(fig, path, dpi=DPI)
            return str(path)
        from PIL import Image  # a dependency of matplotlib

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
        buf.seek(0)
        with Image.open(buf) as image:
            palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        out = io.BytesIO()
        palette.save(out, format="PNG", optimize=True)
        atomic_write_bytes(path, out.getvalue())
        return str(path)
    finally:
        fig.clear()


def _marker_size(n):
    return float(np.clip(600.0 / max(n, 1) ** 0.5, 3.0, 30.0))


def _alpha(n):
    return float(np.clip(30.0 / max(n, 1) ** 0.5, 0.25, 0.85))


def _legend(ax, **kwargs):
    """A legend whose scatter markers are opaque and legible however small and faint the points."""
    from matplotlib.collections import PathCollection

    kwargs.setdefault("fontsize", 8)
    kwargs.setdefault("framealpha", 0.9)
    legend = ax.legend(**kwargs)
    for handle in legend.legend_handles:
        if isinstance(handle, PathCollection):
            handle.set_alpha(1.0)
            handle.set_sizes([25.0])
    return legend


def _by_sex(d):
    male = d["male"].to_numpy()
    return (("female", d[~male]), ("male", d[male]))


def _wrap(title, width=60):
    """Long titles (paper, variant, data, split) wrap instead of running off a square figure."""
    import textwrap
    return "\n".join(textwrap.wrap(title, width)) if title else title


def draw_predicted_vs_reference(ax, d, legend=True, colour=None):
    """Predicted vs reference bone age of prepared predictions `d` (prepare_predictions) on `ax`: by sex
    (or all in `colour`), with the identity line. One run's figure draws it, and each cell of a comparison's grid."""
    n = len(d)
    for sex, part in _by_sex(d):
        if len(part):
            mae = np.abs(part["boneage_pred"] - part["boneage_true"]).mean()
            label = f"{sex.capitalize()} (n={len(part)}, MAE {mae:.2f} months)"
        else:
            label = f"{sex.capitalize()} (n=0)"
        ax.scatter(part["boneage_true"], part["boneage_pred"], s=_marker_size(n), alpha=_alpha(n),
                   color=colour or SEX_COLOURS[sex], edgecolors="none", label=label)
    values = np.concatenate([d["boneage_true"].to_numpy(), d["boneage_pred"].to_numpy()])
    lo = min(0.0, float(values.min())) if n else 0.0
    hi = max(240.0, float(values.max())) if n else 240.0
    pad = 0.02 * (hi - lo)
    lims = (lo - pad, hi + pad)
    ax.plot(lims, lims, color="0.25", lw=1.0, ls="--", label="Identity (pred = ref)")
    ax.set_xlim(lims)
    ax.set_ylim(lims)
    ax.set_aspect("equal")
    ax.set_xticks(np.arange(0, hi + 1, 24 if legend else 48))
    ax.set_yticks(np.arange(0, hi + 1, 24 if legend else 48))
    ax.grid(True, color="0.9", lw=0.6)
    ax.set_axisbelow(True)
    ax.set_xlabel("Reference bone age (months)")
    ax.set_ylabel("Predicted bone age (months)")
    if legend:
        overall = point_metrics(d["boneage_true"], d["boneage_pred"])["mae"] if n else float("nan")
        legend_title = f"All: n={n}, MAE {overall:.2f} months" if n else "no images"
        _legend(ax, loc="upper left", title=legend_title, title_fontsize=9)


def plot_predicted_vs_reference(df, path, title=""):
    """Predicted vs reference bone age, coloured by sex, with the identity line; MAEs in the legend."""
    fig, ax = new_figure((6.2, 6.0))
    draw_predicted_vs_reference(ax, prepare_predictions(df))
    ax.set_title(_wrap(title) or "Predicted vs reference bone age", fontsize=10)
    return _save(fig, path)


def draw_bland_altman(ax, d, legend=True, colour=None):
    """Bland–Altman of prepared predictions `d` on `ax`: mean of prediction and reference vs their
    difference, by sex (or all in `colour`), the bias and the ±1.96 SD limits."""
    n = len(d)
    mean = (d["boneage_pred"] + d["boneage_true"]) / 2.0
    diff = d["boneage_pred"] - d["boneage_true"]
    for sex, part in _by_sex(d):
        ax.scatter(mean[part.index], diff[part.index], s=_marker_size(n), alpha=_alpha(n),
                   color=colour or SEX_COLOURS[sex], edgecolors="none", label=f"{sex.capitalize()} (n={len(part)})")
    ax.axhline(0.0, color="0.6", lw=0.8)
    if n:
        bias = float(diff.mean())
        ax.axhline(bias, color="black", lw=1.4, label=f"Bias {bias:+.2f} months")
        if n >= 2:
            sd = float(diff.std(ddof=1))
            lo, hi = bias - 1.96 * sd, bias + 1.96 * sd
            ax.axhline(hi, color="black", lw=1.0, ls="--",
                       label=f"±1.96 SD limits [{lo:+.1f}, {hi:+.1f}] months")
            ax.axhline(lo, color="black", lw=1.0, ls="--")
            span = max(abs(float(diff.min())), abs(float(diff.max())), abs(lo), abs(hi))
            if span > 0:  # every prediction on its reference: leave matplotlib's default limits
                ax.set_ylim(-1.15 * span, 1.15 * span)
    ax.set_xlim(0, max(240.0, float(mean.max()) if n else 0.0) * 1.02)
    ax.set_xticks(np.arange(0, ax.get_xlim()[1], 24 if legend else 48))
    ax.grid(True, color="0.9", lw=0.6)
    ax.set_axisbelow(True)
    ax.set_xlabel("Mean of predicted and reference bone age (months)")
    ax.set_ylabel("Predicted − reference (months)")
    if legend:
        _legend(ax, loc="upper right")


def plot_bland_altman(df, path, title=""):
    """Bland–Altman: mean of prediction and reference vs their difference, bias and ±1.96 SD limits."""
    fig, ax = new_figure((7.4, 5.0))
    draw_bland_altman(ax, prepare_predictions(df))
    ax.set_title(_wrap(title) or "Bland–Altman agreement", fontsize=10)
    return _save(fig, path)


def plot_error_by_age(df, path, title=""):
    """Left: absolute error per reference-age band (box plots, MAE diamonds). Right: signed error vs age."""
    d = prepare_predictions(df)
    fig, (ax_box, ax_sc) = new_figure((11.5, 4.8), ncols=2)
    n = len(d)
    t, p = d["boneage_true"].to_numpy(), d["boneage_pred"].to_numpy()
    err, abs_err = p - t, np.abs(p - t)
    bands = age_band_labels(t)

    data, positions = [], []
    for i, label in enumerate(AGE_BAND_LABELS):
        values = abs_err[bands == label]
        if values.size:
            data.append(values)
            positions.append(i)
    if data:
        ax_box.boxplot(data, positions=positions, widths=0.55, patch_artist=True,
                       boxprops=dict(facecolor="#CFE3F3", edgecolor="0.3"),
                       medianprops=dict(color="black"), whiskerprops=dict(color="0.3"),
                       capprops=dict(color="0.3"),
                       flierprops=dict(marker="o", markersize=2.5, markerfacecolor="0.5",
                                       markeredgecolor="none", alpha=0.6))
        ax_box.plot(positions, [v.mean() for v in data], "D", color="#D55E00", markersize=6,
                    label="MAE", zorder=3)
        ax_box.legend(loc="upper left", fontsize=8)
    counts = [int(np.sum(bands == label)) for label in AGE_BAND_LABELS]
    ax_box.set_xticks(range(len(AGE_BAND_LABELS)))
    ax_box.set_xticklabels([f"{label}\n(n={c})" for label, c in zip(AGE_BAND_LABELS, counts)])
    ax_box.set_xlim(-0.6, len(AGE_BAND_LABELS) - 0.4)
    ax_box.set_ylim(bottom=0)
    ax_box.grid(True, axis="y", color="0.9", lw=0.6)
    ax_box.set_axisbelow(True)
    ax_box.set_xlabel("Reference age band (years)")
    ax_box.set_ylabel("Absolute error (months)")
    ax_box.set_title("Absolute error by age band")

    for sex, part in _by_sex(d):
        ax_sc.scatter(part["boneage_true"], part["boneage_pred"] - part["boneage_true"],
                      s=_marker_size(n), alpha=_alpha(n), color=SEX_COLOURS[sex], edgecolors="none",
                      label=f"{sex.capitalize()} (n={len(part)})")
    ax_sc.axhline(0.0, color="0.4", lw=0.8)
    xmax = max(240.0, float(t.max()) if n else 0.0)
    for lo, _ in AGE_BANDS_YEARS[1:]:
        ax_sc.axvline(lo * 12, color="0.8", lw=0.8, ls=":")
    # Mean signed error per band, drawn at the band's mean reference age.
    centres, means = [], []
    for label in AGE_BAND_LABELS:
        mask = bands == label
        if mask.any():
            centres.append(t[mask].mean())
            means.append(err[mask].mean())
    if centres:
        ax_sc.plot(centres, means, "-o", color="black", lw=1.4, markersize=5,
                   label="Mean signed error per band", zorder=3)
    if n:
        span = float(np.abs(err).max())
        ax_sc.set_ylim(-1.1 * span - 1, 1.1 * span + 1)
    ax_sc.set_xlim(0, xmax * 1.02)
    ax_sc.set_xticks(np.arange(0, xmax + 1, 24))
    ax_sc.grid(True, color="0.93", lw=0.6)
    ax_sc.set_axisbelow(True)
    ax_sc.set_xlabel("Reference bone age (months)")
    ax_sc.set_ylabel("Predicted − reference (months)")
    ax_sc.set_title("Signed error vs reference age")
    _legend(ax_sc, loc="upper right")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _history_frame(history):
    if history is None:
        return pd.DataFrame()
    if isinstance(history, pd.DataFrame):
        return history
    if hasattr(history, "history") and isinstance(history.history, dict):  # a keras History
        history = history.history
    return pd.DataFrame(history)


def _is_mae_column(name):
    name = str(name).lower()
    return (name in ("mae", "val_mae") or name.endswith("_mae")
            or "mean_absolute_error" in name)


def plot_learning_curves(history, path, title="", mae_units="months"):
    """Per-epoch loss (left) and MAE (right) from a history table (column "epoch", any of
    loss / val_loss / mae / val_mae, other *loss and *mae columns too). Without epochs, a figure
    that says so. `mae_units` labels the MAE axis (pass e.g. "z-score units" for scaled targets).
    """
    h = _history_frame(history)
    numeric = {c: pd.to_numeric(h[c], errors="coerce") for c in h.columns if str(c) != "epoch"}
    numeric = {c: v for c, v in numeric.items() if v.notna().any()}
    loss_cols = [c for c in numeric if str(c).lower().endswith("loss")]
    mae_cols = [c for c in numeric if _is_mae_column(c) and c not in loss_cols]
    # training curve before validation curve, whatever the column order
    key = lambda c: (str(c).lower().startswith("val_"), str(c))  # noqa: E731
    loss_cols, mae_cols = sorted(loss_cols, key=key), sorted(mae_cols, key=key)
    panels = [(cols, kind) for cols, kind in ((loss_cols, "loss"), (mae_cols, "mae")) if cols]

    if len(h) == 0 or not panels:
        fig, ax = new_figure((7.0, 3.2))
        msg = ("no epochs recorded" if len(h) == 0 else
               f"no loss or MAE columns in history\n(columns: {', '.join(map(str, h.columns))})")
        ax.text(0.5, 0.5, msg, ha="center", va="center", fontsize=13, color="0.3",
                transform=ax.transAxes)
        ax.set_axis_off()
        ax.set_title(title or "Learning curves")
        return _save(fig, path)

    if "epoch" in h.columns:
        epochs = pd.to_numeric(h["epoch"], errors="coerce").to_numpy(dtype=float)
    else:
        epochs = np.arange(1, len(h) + 1, dtype=float)
    fig, axes = new_figure((5.2 * len(panels), 4.2), ncols=len(panels))
    axes = np.atleast_1d(axes)
    marker = "o" if len(h) <= 30 else None
    for ax, (cols, kind) in zip(axes, panels):
        for c in cols:
            y = numeric[c].to_numpy(dtype=float)
            is_val = str(c).lower().startswith("val_")
            line, = ax.plot(epochs, y, marker=marker, markersize=3, lw=1.5,
                            ls="-" if is_val else "--", label=str(c))
            if is_val and np.isfinite(y).any():
                i = int(np.nanargmin(y))
                ax.plot(epochs[i], y[i], "*", color=line.get_color(), markersize=12,
                        label=f"best {c} {y[i]:.3g} (epoch {epochs[i]:g})")
        if kind == "loss":
            positive = np.concatenate([numeric[c].to_numpy(dtype=float) for c in cols])
            positive = positive[np.isfinite(positive)]
            if positive.size and positive.min() > 0 and positive.max() / positive.min() > 30:
                ax.set_yscale("log")
            ax.set_ylabel("Loss")
            ax.set_title("Loss")
        else:
            ax.set_ylabel(f"MAE ({mae_units})" if mae_units else "MAE")
            ax.set_title("Mean absolute error")
        ax.set_xlabel("Epoch")
        ax.grid(True, color="0.9", lw=0.6)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


# ---------------------------------------------------------------------------------- writing

def _json_safe(obj):
    """Plain JSON: numpy scalars to Python, NaN/inf to null (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def write_evaluation(out_dir, df, history=None, title="", n_boot=1000, seed=0, extra=None) -> dict:
    """Writes the evaluation of one set of predictions into out_dir, every file atomically.

    Files: predictions.csv (df sorted by id, plus abs_error; any further columns of df kept),
    metrics.json (the `evaluate_predictions` result; NaN as null), metrics.md,
    predicted_vs_reference.png, bland_altman.png, error_by_age.png, and learning_curves.png when
    a history is given. `extra` ({section: (values dict, markdown)}, e.g. a task's interval
    coverage) adds each section to metrics.json under its name and its markdown to metrics.md.
    Returns {kind: path}. The input is validated before anything is written.
    """
    out_dir = Path(out_dir)
    result = evaluate_predictions(df, n_boot=n_boot, seed=seed)  # validates first
    clash = sorted(set(extra or {}) & set(result))
    if clash:
        raise ValueError(f"extra metric sections {clash} would overwrite the evaluation's own; rename them")
    markdown = metrics_markdown(result, title)
    for section, (values, text) in (extra or {}).items():
        result[section] = values
        markdown = markdown.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    paths = {}

    table = df.copy()
    table["abs_error"] = (pd.to_numeric(table["boneage_pred"]) - pd.to_numeric(table["boneage_true"])).abs()
    table = table.sort_values("id", kind="stable").reset_index(drop=True)
    paths["predictions"] = str(out_dir / "predictions.csv")
    atomic_to_csv(table, paths["predictions"])

    paths["metrics_json"] = str(out_dir / "metrics.json")
    atomic_write_json(paths["metrics_json"], _json_safe(result))
    paths["metrics_md"] = str(out_dir / "metrics.md")
    atomic_write_text(paths["metrics_md"], markdown)

    def titled(what):
        return f"{title}: {what}" if title else what[0].upper() + what[1:]

    paths["predicted_vs_reference"] = plot_predicted_vs_reference(
        df, out_dir / "predicted_vs_reference.png", titled("predicted vs reference bone age"))
    paths["bland_altman"] = plot_bland_altman(
        df, out_dir / "bland_altman.png", titled("Bland–Altman agreement"))
    paths["error_by_age"] = plot_error_by_age(
        df, out_dir / "error_by_age.png", titled("error by reference age"))
    if history is not None:
        paths["learning_curves"] = plot_learning_curves(
            history, out_dir / "learning_curves.png", titled("learning curves"))
    return paths
