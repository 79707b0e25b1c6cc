"""Decision fusion: one bone age per radiograph from its 49 patch predictions.

The entry fused its patch predictions into one bone age; the rule is not published, so three
are computed and reported side by side (config `eval.fusions`; the primary one first):

* `mean`:    the average of the patch predictions;
* `median`:  their median (robust to a few patches that see only background or a marker);
* `learned`: a weighted average with one weight per patch position, fitted on the validation
  split by least squares under the constraint that the weights are non-negative and sum to
  one (`fit_simplex_weights`). Positions that carry more age information get more weight;
  the constraint keeps it an average, so a radiograph whose patches all say c months is
  given c months, and the fit cannot extrapolate.

Every fusion maps constant patch predictions to that constant (tested). With one patch per
radiograph (the whole-image variants, a 1 x 1 grid) every fusion is the identity: the learned
weight of the single position is 1.
"""
from __future__ import annotations

import numpy as np

FUSIONS = ("mean", "median", "learned")


def _as_matrix(patch_months) -> np.ndarray:
    p = np.asarray(patch_months, np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValueError(f"Expected patch predictions [radiographs, patches]. Received: shape={p.shape}")
    return p


def project_to_simplex(v) -> np.ndarray:
    """The Euclidean projection of v onto {w : w >= 0, sum(w) = 1} (Duchi et al., ICML 2008, Fig. 1)."""
    v = np.asarray(v, np.float64)
    u = np.sort(v)[::-1]
    css = np.cumsum(u)
    rho = np.nonzero(u * np.arange(1, v.size + 1) > css - 1.0)[0][-1]
    theta = (css[rho] - 1.0) / (rho + 1.0)
    return np.maximum(v - theta, 0.0)


def fit_simplex_weights(patch_months, months, iterations: int = 5000, tol: float = 1e-10) -> np.ndarray:
    """Weights w >= 0, sum(w) = 1 minimising mean((patch_months @ w - months)^2).

    Projected gradient descent with step 1/L (L the gradient's Lipschitz constant), from the
    uniform weights (the mean fusion): a convex problem, so it converges to the optimum.

    Args:
        patch_months: [n, N] patch predictions of n validation radiographs.
        months: [n] their reference bone ages.
    Returns:
        [N] weights.
    """
    p = _as_matrix(patch_months)
    y = np.asarray(months, np.float64).reshape(-1)
    if y.shape[0] != p.shape[0] or p.shape[0] == 0:
        raise ValueError(f"Need one reference age per radiograph and at least one radiograph. "
                         f"Received: {p.shape[0]} radiographs, {y.shape[0]} ages")
    if not (np.isfinite(p).all() and np.isfinite(y).all()):
        raise ValueError("patch predictions and ages must be finite")
    if p.shape[1] == 1:  # one position (the whole-image variants): the simplex is the single point w = [1]
        return np.ones(1)
    gram, rhs = p.T @ p / len(y), p.T @ y / len(y)
    lipschitz = 2.0 * float(np.linalg.eigvalsh(gram)[-1])
    w = np.full(p.shape[1], 1.0 / p.shape[1])
    if lipschitz <= 0:
        return w
    for _ in range(iterations):
        new = project_to_simplex(w - (2.0 * (gram @ w - rhs)) / lipschitz)
        if np.max(np.abs(new - w)) < tol:
            w = new
            break
        w = new
    return w


def fuse(patch_months, method: str, weights=None) -> np.ndarray:
    """[n, N] patch predictions -> [n] bone ages by `method` ("mean", "median" or "learned" with `weights`)."""
    p = _as_matrix(patch_months)
    if method == "mean":
        return p.mean(axis=1)
    if method == "median":
        return np.median(p, axis=1)
    if method == "learned":
        if weights is None:
            raise ValueError("The learned fusion needs weights (fit_simplex_weights on the validation split).")
        w = np.asarray(weights, np.float64).reshape(-1)
        if w.shape[0] != p.shape[1]:
            raise ValueError(f"Expected {p.shape[1]} fusion weights (one per patch). Received: {w.shape[0]}")
        if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
            raise ValueError(f"Fusion weights must be finite, >= 0 and not all 0. Received: {w.tolist()}")
        return p @ (w / w.sum())
    raise ValueError(f"Unknown fusion; expected one of {FUSIONS}. Received: method={method!r}")
