"""The no-learning reference: the MAE of predicting the training split's mean age, without looking
at the image (pooled, and with one mean per sex).

`common.train.evaluate` computes it for the split it evaluates and keeps it in that evaluation's
entry of the run record ("no_learning"), so `python -m reproductions compare` reads it from the
records instead of reopening the dataset; compare computes it itself (`mean_predictor`) only for
records evaluated before the entry existed. Only the labels are read: no image is decoded.
"""
from __future__ import annotations

import numpy as np


def _labels(handle, split):
    from common import pipeline
    pairs = pipeline.read_split(handle, split).map(lambda e: (e["boneage_months"], e["male"]))
    ages, males = zip(*pairs.as_numpy_iterator())
    return np.asarray(ages, float), np.asarray(males, int)


def no_learning(handle, split: str, train_handle=None) -> dict:
    """{"n", "pooled", "per_sex"}: on `split` of `handle`, the MAE of predicting the mean age of the
    training split of `train_handle` (default: `handle` itself; another dataset for a run evaluated
    on other data than it was trained on), one mean for both sexes and one per sex."""
    train_age, train_male = _labels(train_handle or handle, "train")
    age, male = _labels(handle, split)
    mean = {sex: train_age[train_male == sex].mean() if np.any(train_male == sex) else train_age.mean()
            for sex in (0, 1)}  # a sex absent from training: the pooled mean for it
    per_sex = np.where(male == 1, mean[1], mean[0])
    return {"n": len(age), "pooled": float(np.abs(age - train_age.mean()).mean()),
            "per_sex": float(np.abs(age - per_sex).mean())}
