"""The age head's law and its proper scoring rules, in keras.ops (every backend).

The head predicts a location-scale law for each radiograph: a location (the point estimate, in
months) and a scale (months, > 0). Two laws, two scores:

    law       CRPS (closed form, z = (y - mu) / s)                       negative log-likelihood
    laplace   s (|z| + exp(-|z|) - 3/4)                                  log(2 s) + |z|
    gaussian  s (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi))             log(s) + z^2 / 2 + log(2 pi) / 2

Both are proper scoring rules: their expectation under the true law is smallest when the
predicted law is the true one, so training on them asks for an honest scale, not only a good
location. The CRPS is in months, and as the scale goes to 0 it becomes the absolute error: the
location is trained towards the median, as the MAE the field reports asks (Gneiting & Raftery,
JASA 2007;102:359-378, for the CRPS and the closed forms; Laplace: their eq. for the
two-piece laws with equal halves).

The model's "months" output holds both numbers: [B, 2] = (location, scale), float32.

The plain-L1 ablation (`model.distribution = "point"`) predicts no law, only the location (the
model then reports a constant scale beside it). Its loss is the absolute error, which is also
the CRPS of a point forecast: CRPS(F, y) = E|X - y| - E|X - X'| / 2 (Gneiting & Raftery 2007,
eq. 21) is |x - y| when all of F's mass sits at x. So `train.loss = "crps"` stays and the pair
differs in the head alone; a point has no likelihood, so `"nll"` is refused for it.
"""
import math

from keras import ops

DISTRIBUTIONS = ("laplace", "gaussian")
POINT = "point"  # no law: the location alone (the plain-L1 ablation)
AGE_HEADS = (*DISTRIBUTIONS, POINT)  # the values of model.distribution
SCORES = ("crps", "nll")


def _check(distribution: str, score: str | None = None, heads=DISTRIBUTIONS):
    if distribution not in heads:
        raise ValueError(f"distribution must be one of {heads}. Received: distribution={distribution!r}")
    if score is not None and score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}. Received: score={score!r}")
    if distribution == POINT and score == "nll":
        raise ValueError("a point head (distribution='point', the plain-L1 ablation) has no likelihood: train it with "
                         "train.loss='crps', which is its absolute error. Received: score='nll'")


def crps(y, loc, scale, distribution: str = "laplace"):
    """Continuous ranked probability score of each y under the law (loc, scale), in months."""
    _check(distribution)
    z = (y - loc) / scale
    if distribution == "laplace":
        a = ops.abs(z)
        return scale * (a + ops.exp(-a) - 0.75)
    cdf = 0.5 * (1.0 + ops.erf(z / math.sqrt(2.0)))
    pdf = ops.exp(-0.5 * ops.square(z)) / math.sqrt(2.0 * math.pi)
    return scale * (z * (2.0 * cdf - 1.0) + 2.0 * pdf - 1.0 / math.sqrt(math.pi))


def nll(y, loc, scale, distribution: str = "laplace"):
    """Negative log-likelihood of each y under the law (loc, scale) (months as the unit of density)."""
    _check(distribution)
    z = (y - loc) / scale
    if distribution == "laplace":
        return ops.log(2.0 * scale) + ops.abs(z)
    return ops.log(scale) + 0.5 * ops.square(z) + 0.5 * math.log(2.0 * math.pi)


def score(y, loc, scale, distribution: str = "laplace", name: str = "crps"):
    """`crps` or `nll` by name."""
    _check(distribution, name)
    return (crps if name == "crps" else nll)(y, loc, scale, distribution)


def split(y_pred):
    """(location [B], scale [B]) of the "months" output [B, 2]."""
    y_pred = ops.cast(y_pred, "float32")
    return y_pred[:, 0], y_pred[:, 1]


def age_loss(distribution: str = "laplace", name: str = "crps", weight: float = 1.0):
    """Keras loss of the "months" output: the score of each reference age (y_true [B, 1] or [B]) under the predicted
    law; for distribution "point", the absolute error of the location (the CRPS of a point forecast)."""
    _check(distribution, name, AGE_HEADS)
    if distribution == POINT:
        def point_loss(y_true, y_pred):
            return weight * absolute_error(y_true, y_pred)
        point_loss.__name__ = "point_l1"
        return point_loss

    def loss(y_true, y_pred):
        loc, scale = split(y_pred)
        y = ops.reshape(ops.cast(y_true, "float32"), (-1,))
        return weight * score(y, loc, scale, distribution, name)
    loss.__name__ = f"{distribution}_{name}"
    return loss


def absolute_error(y_true, y_pred):
    """|reference - location| per example, months: the `mae` metric of the "months" output."""
    loc, _ = split(y_pred)
    return ops.abs(ops.reshape(ops.cast(y_true, "float32"), (-1,)) - loc)
