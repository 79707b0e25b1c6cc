"""Split-conformal intervals from the predicted scale: fitted on the validation split, checked on the test split.

Nonconformity of a validation radiograph: r = |y - mu| / sigma (the absolute error in units of
the predicted scale; "normalised" or "locally weighted" split conformal, Lei et al., JASA
2018;113:1094-1111, §5.2; Papadopoulos et al. 2008). For a level 1 - alpha, q is the
ceil((n + 1)(1 - alpha))-th smallest of the n validation scores (the finite-sample correction:
infinite when that rank exceeds n), and the interval of a new radiograph is mu +/- q sigma. When
validation and test radiographs are exchangeable, the interval covers the reference age with
probability at least 1 - alpha (and at most 1 - alpha + 1 / (n + 1) without ties), whatever the
network, however wrong its scale: the scale only decides which radiographs get wide intervals.

Evaluation reports, per level, the empirical coverage and the mean width (months), and the
Spearman correlation between the predicted scale and the absolute error (does the spread track
the error?). A point head (the plain-L1 ablation) reports a constant scale of 1 month: the scores
are then the absolute residuals |y - mu|, and the intervals mu +/- q have one width for every
image, with the same guarantee (plain split conformal, Lei et al. §2.2). Plain numpy: no backend
involved.
"""
import math

import numpy as np
import pandas as pd

LEVELS = (0.80, 0.90, 0.95)  # issue 19: intervals at 80 / 90 / 95 %
SCALE_COLUMN = "scale_months"


def level_name(level: float) -> str:
    """0.9 -> "90"."""
    return f"{round(100 * level):d}"


def interval_columns(levels=LEVELS) -> tuple:
    """The per-image columns of a prediction: the scale, then lower_80, upper_80, ..."""
    return (SCALE_COLUMN,) + tuple(f"{side}_{level_name(lv)}" for lv in levels for side in ("lower", "upper"))


def nonconformity(y, loc, scale) -> np.ndarray:
    """|y - loc| / scale per example."""
    y, loc, scale = (np.asarray(a, np.float64).reshape(-1) for a in (y, loc, scale))
    if not (len(y) == len(loc) == len(scale)):
        raise ValueError(f"y, loc and scale must have one value per example. Received lengths {len(y)}, "
                         f"{len(loc)}, {len(scale)}")
    if not np.all(scale > 0):
        raise ValueError(f"every scale must be > 0. Received: min scale={scale.min()!r}")
    return np.abs(y - loc) / scale


def conformal_quantile(scores, level: float) -> float:
    """The ceil((n + 1) level)-th smallest score; inf when that rank exceeds n (too few examples for the level)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1). Received: level={level!r}")
    scores = np.sort(np.asarray(scores, np.float64).reshape(-1))
    n = len(scores)
    if n == 0:
        raise ValueError("no calibration examples: the validation split is empty")
    rank = math.ceil((n + 1) * level - 1e-9)  # 1e-9: (n + 1) * 0.9 must not round up past a whole number
    return float("inf") if rank > n else float(scores[rank - 1])


def fit(y, loc, scale, levels=LEVELS) -> dict:
    """{level name: q} from calibration examples."""
    scores = nonconformity(y, loc, scale)
    return {level_name(lv): conformal_quantile(scores, lv) for lv in levels}


def intervals(loc, scale, quantiles: dict) -> dict:
    """{column: values}: the scale and lower_/upper_<level> of mu +/- q sigma for each fitted level."""
    loc, scale = np.asarray(loc, np.float64).reshape(-1), np.asarray(scale, np.float64).reshape(-1)
    out = {SCALE_COLUMN: scale}
    for name, q in quantiles.items():
        out[f"lower_{name}"], out[f"upper_{name}"] = loc - q * scale, loc + q * scale
    return out


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    ra = pd.Series(np.asarray(a, np.float64).reshape(-1)).rank().to_numpy()
    rb = pd.Series(np.asarray(b, np.float64).reshape(-1)).rank().to_numpy()
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def report(df: pd.DataFrame, levels=LEVELS) -> dict:
    """Coverage and mean width per level, and Spearman(scale, |error|), from a predictions table with
    boneage_true, boneage_pred (the location), scale_months and lower_/upper_<level> columns."""
    y = df["boneage_true"].to_numpy(np.float64)
    out = {"images": int(len(df)), "levels": {}}
    for lv in levels:
        name = level_name(lv)
        lo, hi = df[f"lower_{name}"].to_numpy(np.float64), df[f"upper_{name}"].to_numpy(np.float64)
        if not np.isfinite(lo).all() or not np.isfinite(hi).all():
            out["levels"][name] = {"nominal": lv, "coverage": None, "mean_width_months": None,
                                   "note": "no finite interval (not calibrated, or too few calibration images)"}
            continue
        out["levels"][name] = {"nominal": lv, "coverage": float(np.mean((y >= lo) & (y <= hi))),
                               "mean_width_months": float(np.mean(hi - lo))}
    abs_error = np.abs(df["boneage_pred"].to_numpy(np.float64) - y)
    scale = df[SCALE_COLUMN].to_numpy(np.float64)
    out["spearman_scale_vs_abs_error"] = spearman(scale, abs_error)
    out["mean_scale_months"] = float(df[SCALE_COLUMN].mean())
    # A point head (model.distribution "point") reports one scale for every image: its intervals have one
    # width and its Spearman is undefined (NaN), which the markdown then says instead of a dash.
    out["constant_scale"] = bool(len(scale) > 0 and np.all(scale == scale[0]))
    return out


def markdown(result: dict, calibration: dict | None = None) -> str:
    """The uncertainty section of metrics.md."""
    lines = ["## Uncertainty: split-conformal intervals", ""]
    if calibration:
        lines += [f"Calibrated on {calibration.get('images', '?')} images of the {calibration.get('split', '?')} split of "
                  f"{calibration.get('dataset', '?')} (|y - mu| / sigma, rank ceil((n + 1) level)). "
                  + ("**Evaluated on the calibration split itself: coverage here is in-sample.**"
                     if calibration.get("in_sample") else ""), ""]
    lines += ["| level | coverage | mean width (months) |", "|---|---|---|"]
    for name, m in result["levels"].items():
        if m.get("coverage") is None:
            lines.append(f"| {name}% | — | — |")
        else:
            lines.append(f"| {name}% | {100 * m['coverage']:.1f}% | {m['mean_width_months']:.1f} |")
    rho = result.get("spearman_scale_vs_abs_error")
    if result.get("constant_scale"):
        lines += ["", f"The scale is the same for every image ({result['mean_scale_months']:.2f} months: a point head, "
                  "no predicted spread): each interval is location ± q with one width for all, q the conformal "
                  f"quantile of |y − location|; no Spearman correlation to report ({result['images']} images).", ""]
        return "\n".join(lines)
    lines += ["", f"Spearman correlation of the predicted scale with the absolute error: "
              f"{'—' if rho is None or rho != rho else f'{rho:.3f}'} ({result['images']} images; mean scale "
              f"{result['mean_scale_months']:.2f} months).", ""]
    return "\n".join(lines)
