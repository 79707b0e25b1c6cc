"""`evaluate --stage ensemble`: the mean of the age networks' predictions, evaluated and recorded.

The members are age runs (regress / classify, any region) evaluated on the same split of the
same dataset; each contributes its primary estimate per image (`<run>/<split>/predictions.csv`)
and the ensemble is their plain mean. Without `--runs`, the members are the runs of the six
networks (3 regions x 2 heads) of this base variant on this dataset, found by their default
run-directory names. The result is written like any run (run.json with an "evaluations" entry,
`<split>/` with metrics and plots), as variant "<base>-ensemble", so common.results and the
region table pick it up.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from common import evaluation, io, provenance
from common import results as common_results
from common.runs import RunDir, run_name
from reproductions.iglovikov18 import config as ig_config
from reproductions.iglovikov18.variants import ENSEMBLE, Variant


def default_members(results_dir, data_slug, base, image_size):
    """Run directories of the six age networks of a base variant on a dataset that exist."""
    root = Path(results_dir) / "iglovikov18"
    out = []
    for variant in Variant.age_networks(base):
        run = root / run_name(data_slug, variant.name, image_size)
        if RunDir(run).has_record():
            out.append(run)
    return out


def ensemble_predictions(members, split):
    """(DataFrame id, boneage_true, male, boneage_pred = mean of the members, one column per member)."""
    frames = []
    for run in members:
        path = Path(run) / split / "predictions.csv"
        if not path.exists():
            raise SystemExit(f"error: {run} has no {split} predictions; evaluate it first "
                             f"(python -m reproductions.iglovikov18 evaluate --stage ... --out {run}).")
        df = pd.read_csv(path, dtype={"id": str})[["id", "boneage_true", "boneage_pred", "male"]]
        frames.append(df.rename(columns={"boneage_pred": Path(run).name}).set_index("id"))
    ids = set(frames[0].index)
    for f, run in zip(frames[1:], members[1:]):
        if set(f.index) != ids:
            raise SystemExit(f"error: {run} was evaluated on other images than {members[0]}; the ensemble needs "
                             "the same split of the same dataset.")
    table = frames[0][["boneage_true", "male"]].copy()
    for f in frames:
        table[f.columns[1]] = f[f.columns[1]]
    names = [Path(r).name for r in members]
    table["boneage_pred"] = table[names].mean(axis=1)
    return table.reset_index(), names


def main(base, argv, log=print):
    p = argparse.ArgumentParser(prog="python -m reproductions.iglovikov18 evaluate --stage ensemble")
    p.add_argument("--runs", nargs="+", default=None, help="age run directories (default: the six of this variant)")
    p.add_argument("--data", default=None, help="dataset the members were evaluated on (for the default members)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--eval-data", default=None, help="the members' evaluation on another dataset (as given to their "
                   "`evaluate --eval-data`, e.g. the official test images registered by the same chain) instead "
                   "of their own test split")
    p.add_argument("--split-column", default=None, help="with --eval-data: as given to the members' evaluate")
    p.add_argument("--out", default=None, help="run directory of the ensemble")
    args = p.parse_args(argv)
    evaluate_ensemble(base, runs=args.runs, data=args.data, data_dir=args.data_dir, image_size=args.image_size,
                      split=args.split, eval_data=args.eval_data, split_column=args.split_column, out=args.out, log=log)
    return 0


def ensemble_dir(data_name: str, base: str, image_size) -> Path:
    """The run directory `evaluate --stage ensemble` writes for a base's age networks trained on `data_name`."""
    return Path(common_results.RESULTS_DIR) / "iglovikov18" / run_name(data_name, Variant(base, ENSEMBLE).name,
                                                                       image_size)


def evaluate_ensemble(base, runs=None, data=None, data_dir=None, image_size=None, split="test", eval_data=None,
                      split_column=None, out=None, log=print) -> Path:
    """The ensemble of `runs` (default: the six age networks of `base` on `data` that exist), evaluated on
    `split` of their own data, or of `eval_data` (their `evaluate --eval-data`); returns its run directory."""
    results_dir = Path(common_results.RESULTS_DIR)
    if runs:
        members = [Path(r) for r in runs]
        data_name = RunDir(members[0]).record(missing_ok=False).get("dataset", {}).get("name", "?")
    else:
        from common import data as data_lib
        handle = data_lib.resolve(data, data_dir=data_dir, log=log)
        data_name = handle.name
        size = image_size or ig_config.hand_config(base).data.image_size
        members = default_members(results_dir, data_name.replace("/", "-"), base, size)
    if len(members) < 2:
        raise SystemExit(f"error: an ensemble needs at least two evaluated age runs; found {[str(m) for m in members]}. "
                         "Train them first, or pass --runs.")
    start = time.time()
    records = [RunDir(m).record(missing_ok=False) for m in members]
    key = split
    if eval_data:  # the members' evaluation on that dataset, under the key common.train.evaluate gave it
        from common import data as data_lib
        from common import train as common_train
        evaluated = data_lib.resolve(eval_data, data_dir=data_dir, log=log, split_column=split_column)
        key = common_train.evaluation_key(split, evaluated.name, records[0].get("dataset", {}).get("name"))
    table, names = ensemble_predictions(members, key)
    size = records[0].get("image_size")
    variant = Variant(base, ENSEMBLE).name
    out = Path(out) if out else results_dir / "iglovikov18" / run_name(data_name, variant, size)
    ev0 = records[0].get("evaluations", {}).get(key, {})
    evaluated_on = ev0.get("dataset", data_name)
    evaluation.write_evaluation(out / key, table[["id", "boneage_true", "boneage_pred", "male"]],
                                title=f"iglovikov18 ensemble of {len(members)} on {evaluated_on} {split}")
    io.atomic_to_csv(table, out / key / "member_predictions.csv")
    overall = json.loads((out / key / "metrics.json").read_text())["overall"]
    record = {
        "paper": "iglovikov18", "citation": records[0].get("citation"), "variant": variant, "status": "evaluated",
        "members": [str(m) for m in members], "dataset": records[0].get("dataset"), "image_size": size,
        # where the members' weights started (each from its thumbnail run, say), for the tables' column
        "members_initial_weights": "; ".join(sorted({common_results.initial_weights(r, short=True) for r in records})),
        "epochs": max(r.get("epochs", 0) for r in records), "epochs_done": max(r.get("epochs_done", 0) for r in records),
        "precision": records[0].get("precision"), "hardware": provenance.hardware(), "seed": records[0].get("seed"),
        "wall_time_s": round(sum(r.get("wall_time_s", 0) for r in records), 1), **provenance.git_commit(),
        "evaluations": {key: {
            "split": split, "images": len(table), "estimates": {"ensemble": overall}, "primary_estimate": "ensemble",
            "dataset": evaluated_on, "dataset_fingerprint": ev0.get("dataset_fingerprint"),
            "split_fingerprint": ev0.get("split_fingerprint"),
            **{k: ev0[k] for k in ("source_dataset", "source_fingerprint", "trained_on") if k in ev0},
            "epochs_trained": max(r.get("epochs_done", 0) for r in records),
            "image_size": size, "members": names, "wall_time_s": round(time.time() - start, 1), "when": provenance.now(),
            **provenance.git_commit()}},
    }
    previous = RunDir(out).record() or {}  # its evaluations on other data stay (as common.train.evaluate keeps them)
    record["evaluations"] = {**previous.get("evaluations", {}), **record["evaluations"]}
    RunDir(out).write_record(record)
    log(f"{key}: ensemble of {len(members)} MAE {overall['mae']['value']:.2f} months "
        f"[{overall['mae']['ci_low']:.2f}, {overall['mae']['ci_high']:.2f}] on {len(table)} images -> {out}")
    from common import cli
    cli.where_it_landed(out, log)  # the tables are regenerated by `python -m reproductions compare`, not here
    log("The region table (results/iglovikov18/regions.md) was not changed either: `python -m reproductions "
        "compare` regenerates it with the other tables (`python -m reproductions.iglovikov18 table`: it alone).")
    return out
