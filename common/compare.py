"""Side-by-side comparison of every paper and variant on the same data and split.

    python -m reproductions compare            # results/README.md; each experiment's page and plots in
                                               # results/comparison/<experiment>/

An *experiment* is a (dataset, content fingerprint, split) triple. The fingerprint hashes the
ids, labels and pixels (common/datasets/base.py), so two runs share an experiment only when
they saw the very same images at the same stored resolution and were tested on the same
images; each method's own working input size is a column, because choosing it is part of the
method. Runs of different experiments never share a table, and two runs are compared pairwise
only when their test ids are identical.

results/README.md has per experiment a summary (`overview`, summary_lines): the forest plot, the
best run of each paper against the experiment's best run, the no-learning reference and a link to
the experiment's page, results/comparison/<experiment>/README.md, beside its plots, which has its
full section (section_lines; `sections` gives them all in one text).

The full section of each experiment: the forest plot (each run's MAE with its 95% interval, grouped
by paper, against the no-learning reference: the figure to read first); one table, by MAE (MAE
with its bootstrap 95% interval, bias, n, epochs, initial weights, precision, train time, the
paired bootstrap of the run's MAE minus the best run's, "real" only when the 95% interval
excludes 0, and each paper's own number, short and marked as the paper's: the caller gives its
source once); the no-learning reference; every pair in a CSV beside the plots
(results/comparison/<experiment>/pairwise_mae_differences.csv); links to the other plots (MAE by
age band, Bland-Altman grid, predicted vs reference grid, learning curves); one ablation table:
the ablations whose runs are in the experiment, each with the training time both runs needed to
reach the validation MAE both reach (from metrics.csv), the same network trained on other data
(paired on the test images both hold), and each run against the run it started from
(`--init-from`); one line naming the ablations not run yet, whose commands go to results/runs.md
(a pair whose runs are both evaluated, though in different experiments, is listed only where both
have predictions); and, for the runs that report split-conformal intervals, their coverage and
width per level. The ablations (reproductions/ablations.py) are handed in by the caller
(reproductions/registry.py): common/ imports nothing from reproductions/. Every run's provenance
is common/results.py's (results/runs.md).
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd

from common import evaluation, io, results
from common.reference import no_learning
from common.runs import RunDir


class ExperimentMismatch(ValueError):
    """Two runs from different experiments were put side by side."""


def experiment_key(run: dict, split: str) -> tuple:
    """(dataset, fingerprint, split) of one evaluation; a dataset a paper derived image by image from
    another (same ids, labels, splits; e.g. registered canvases) counts as its source. `split` is the
    evaluation's key in the run record: its split, or "<split>-on-<dataset>" for an evaluation on
    another dataset than the run's (evaluate --eval-data), which joins that dataset's experiment."""
    ev = run["evaluations"][split]
    ds = run.get("dataset", {})
    split = ev.get("split", split)
    if ev.get("source_dataset"):
        return (ev["source_dataset"], ev["source_fingerprint"], split)
    return (ev.get("dataset", ds.get("name", "?")), ev.get("dataset_fingerprint", ds.get("fingerprint", "?")), split)


def experiments(runs) -> dict:
    """{(dataset, fingerprint, split): [(run, split), ...]} over every evaluated run."""
    groups: dict = {}
    for run in runs:
        for split in sorted(run.get("evaluations", {})):
            groups.setdefault(experiment_key(run, split), []).append((run, split))
    return groups


def label(run: dict) -> str:
    return f"{run.get('paper', '?')} / {run.get('variant', '?')}"


def _primary(run, split):
    ev = run["evaluations"][split]
    return ev["estimates"][ev["primary_estimate"]], ev["primary_estimate"]


def _ci(m, scale=1.0, digits=2, suffix=""):
    f = lambda x: "—" if x is None or x != x else f"{scale * x:.{digits}f}{suffix}"
    return f"{f(m['value'])} [{f(m['ci_low'])}, {f(m['ci_high'])}]"


def shared_hardware(members) -> str | None:
    """The device every member trained on, None when they differ (each train time then names its own)."""
    devices = {run.get("hardware", {}).get("device", "?") for run, _ in members}
    return devices.pop() if len(devices) == 1 else None


TABLE_HEAD = ("| method (paper / variant) | read-out | input px | MAE months [95% CI] | bias | n | epochs | initial weights "
              "| precision | train time | MAE − best run's [95% CI] | vs best run | paper's own |\n" + "|---" * 13 + "|")
AGAINST_BEST = {"A better (real)": "worse (real)", "B better (real)": "better (real)"}  # A is the best run


def against_best(r: dict | None) -> tuple[str, str]:
    """The (difference, verdict) cells of a run paired with the experiment's best run, from the pair
    (A the best run, B this one) turned round: this run's MAE minus the best's, and its verdict."""
    if r is None:
        return "**best run**", "—"
    return (f"{-r['difference']:+.2f} [{-r['ci_high']:+.2f}, {-r['ci_low']:+.2f}]",
            f"{AGAINST_BEST.get(r['verdict'], r['verdict'])}, p {r['p_value']:.3f}")


def comparison_table(members, paper_cells: dict, versus: dict | None = None) -> str:
    """One markdown table for one experiment, by MAE; refuses members of different experiments.

    Args:
        members: [(run record, split)] of one experiment.
        paper_cells: {paper: its own number, short} (common.results.paper_marker): the column marked
            as the paper's; its test set and citation are given once, outside the table.
        versus: {label: paired result (A the best run, B the run)} (versus_best); None: no pairs.
    """
    keys = {experiment_key(run, split) for run, split in members}
    if len(keys) > 1:
        raise ExperimentMismatch(f"runs of different experiments (data, fingerprint, split) cannot share a table: "
                                 f"{sorted(keys)}")
    shared = shared_hardware(members)
    rows = []
    ordered = sorted(members, key=lambda m: _primary(*m)[0]["mae"]["value"])
    for run, split in ordered:
        m, estimate = _primary(run, split)
        ev = run["evaluations"][split]
        diff, said = against_best((versus or {}).get(label(run))) if versus else ("—", "—")
        minutes = f"{run.get('wall_time_s', float('nan')) / 60:.1f} min"
        bias = m["bias"]["value"]
        rows.append("| " + " | ".join([
            f"`{label(run)}`", estimate, str(run.get("image_size", "?")), "**" + _ci(m["mae"]) + "**",
            "—" if bias is None or bias != bias else f"{bias:.2f}", str(ev.get("images", "?")),
            f"{ev.get('epochs_trained', run.get('epochs_done', '?'))}/{run.get('epochs', '?')}",
            results.initial_weights(run, short=True), str(run.get("precision", "?")),
            minutes if shared else f"{minutes} ({run.get('hardware', {}).get('device', '?')})",
            diff, said, paper_cells.get(run.get("paper"), "—")]) + " |")
    return TABLE_HEAD + "\n" + "\n".join(rows)


def read_predictions(results_dir, run, split) -> pd.DataFrame:
    path = Path(results_dir) / run["_dir"] / split / "predictions.csv"
    return pd.read_csv(path, dtype={"id": str})


def paired(results_dir, a, b, n_boot=2000, seed=0) -> dict:
    """Paired bootstrap of MAE(a) - MAE(b) on the same test images; refuses different image sets."""
    (run_a, split_a), (run_b, split_b) = a, b
    if experiment_key(run_a, split_a) != experiment_key(run_b, split_b):
        raise ExperimentMismatch(f"{label(run_a)} and {label(run_b)} were evaluated on different data or splits: "
                                 f"{experiment_key(run_a, split_a)} vs {experiment_key(run_b, split_b)}")
    pa, pb = read_predictions(results_dir, run_a, split_a), read_predictions(results_dir, run_b, split_b)
    if set(pa["id"]) != set(pb["id"]) or len(pa) != len(pb):
        raise ExperimentMismatch(f"{label(run_a)} and {label(run_b)} have different test images "
                                 f"({len(pa)} vs {len(pb)}); a paired comparison needs the same ones")
    return _bootstrap_merged(pa.merge(pb, on="id", suffixes=("_a", "_b")), run_a, run_b, n_boot, seed)


def _bootstrap_merged(merged, run_a, run_b, n_boot, seed) -> dict:
    """The paired bootstrap of two runs' predictions joined on id, with its verdict; refuses pairs
    that disagree on a reference age."""
    if not np.allclose(merged["boneage_true_a"], merged["boneage_true_b"]):
        raise ExperimentMismatch(f"{label(run_a)} and {label(run_b)} disagree on the reference ages")
    out = evaluation.paired_bootstrap_mae_difference(merged["boneage_true_a"], merged["boneage_pred_a"],
                                                     merged["boneage_pred_b"], n_boot=n_boot, seed=seed)
    out["verdict"] = verdict(out)
    return out


def verdict(result: dict) -> str:
    if not result["ci_low"] == result["ci_low"]:
        return "—"
    if result["ci_low"] > 0:
        return "B better (real)"
    if result["ci_high"] < 0:
        return "A better (real)"
    return "no real difference"


def versus_best(results_dir, members, n_boot=2000, csv_path=None) -> dict:
    """{label: paired bootstrap of (the experiment's best run, the run)} for every run but the best
    (lowest-MAE) one: what comparison_table shows. With `csv_path`, every pair of the experiment
    (A the lower-MAE run of each) goes to that CSV beside the table."""
    by_mae = sorted(members, key=lambda m: _primary(*m)[0]["mae"]["value"])  # A is the lower-MAE run of each pair
    pairs = {}
    for a, b in itertools.combinations(by_mae, 2):
        if csv_path is not None or a is by_mae[0]:
            pairs[(label(a[0]), label(b[0]))] = paired(results_dir, a, b, n_boot)
    if csv_path is not None and pairs:
        io.atomic_to_csv(pd.DataFrame([{"a": a, "b": b, **{k: r[k] for k in ("mae_a", "mae_b", "difference", "ci_low",
                                                                               "ci_high", "p_value", "n")},
                                        "verdict": r["verdict"]} for (a, b), r in pairs.items()]),
                         csv_path)
    best = label(by_mae[0][0]) if by_mae else None
    return {b: r for (a, b), r in pairs.items() if a == best}


def unequal_training(run_a, run_b) -> str:
    """A caveat when the two runs of an ablation trained different numbers of epochs (one stopped by
    its time budget on a slower machine, say): the pair then differs in more than its factor."""
    done = [r.get("epochs_done") for r in (run_a, run_b)]
    if None in done or done[0] == done[1]:
        return ""
    why = [f" (stopped by its {r['stopped_by_budget']} budget)" if r.get("stopped_by_budget") else ""
           for r in (run_a, run_b)]
    return (f"; caveat: unequal training, A {done[0]} of {run_a.get('epochs', '?')} epochs{why[0]}, "
            f"B {done[1]} of {run_b.get('epochs', '?')}{why[1]}")


def ablation_caveat(ab) -> str:
    """The ablation's own caveat (what the pair does not equalise), as a verdict-cell suffix."""
    return f"; caveat: {ab['caveat']}" if ab.get("caveat") else ""


def different_training_data(run_a, run_b) -> str:
    """A caveat when the two runs of an ablation in one experiment trained on different data: one
    experiment holds every run derived from its source dataset (iglovikov18's registered canvases), so
    a pair whose canvases were registered twice would otherwise look like a one-factor pair."""
    data = [(r.get("dataset") or {}).get("fingerprint") for r in (run_a, run_b)]
    if None in data or data[0] == data[1]:
        return ""
    return f"; caveat: trained on different data, A `{data[0][:10]}`, B `{data[1][:10]}`"


ABLATION_HEAD = ("| question | factor | A | B | MAE A − B [95% CI] | verdict | training time to the validation MAE "
                 "both reach |\n" + "|---" * 7 + "|")


def _pair_cell(r: dict) -> str:
    return f"**{r['difference']:+.2f}** [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"


def _not_run(ab, present, pending) -> None:
    """Adds an ablation with a run missing to `pending` (a list, or None: dropped): the ablation
    and the (paper, variant) of its runs missing; each experiment's page gives its own in one line
    (not_run_line), results/runs.md their commands (pending_table)."""
    if pending is not None:
        pending.append({"ablation": ab, "missing": [tuple(arm) for arm, x in zip((ab["a"], ab["b"]), present)
                                                    if x is None]})


def ablation_rows(results_dir, members, ablations, n_boot=2000, pending: list | None = None) -> list[str]:
    """The ablations whose two runs both belong to this experiment: their paired MAE difference,
    verdict and training time to the level both reach. An ablation with a run missing is no row:
    it goes to `pending` (_not_run)."""
    by_name = {(run.get("paper"), run.get("variant")): (run, split) for run, split in members}
    rows = []
    for ab in ablations:
        a, b = by_name.get(tuple(ab["a"])), by_name.get(tuple(ab["b"]))
        names = [f"`{p} / {v}`" for p, v in (ab["a"], ab["b"])]
        if a and b:
            r = paired(results_dir, a, b, n_boot)
            caveat = ablation_caveat(ab) + unequal_training(a[0], b[0]) + different_training_data(a[0], b[0])
            rows.append(f"| {ab['question']} | {ab['factor']} | {names[0]} | {names[1]} | {_pair_cell(r)} | "
                        f"{r['verdict']}{caveat} | {time_to_common_level(results_dir, a[0], b[0])} |")
        else:
            _not_run(ab, (a, b), pending)
    return rows


def ablation_table(results_dir, members, ablations, n_boot=2000) -> str:
    """The ablation table of the measured pairs, and under it the one line of those not run yet."""
    pending: list = []
    text = ABLATION_HEAD + "\n" + "\n".join(ablation_rows(results_dir, members, ablations, n_boot, pending))
    return text + ("\n\n" + not_run_line(pending) if pending else "")


def _short_pairs(ablations) -> str:
    """"`attention_mtl / r512` vs `r512_gru`, `r512_l1`; `larson18 / r512` vs `r512_scratch`": ablations'
    runs, each A once with its Bs, a B's paper said only when it is not A's."""
    by_a: dict = {}
    for ab in ablations:
        (pa, va), (pb, vb) = ab["a"], ab["b"]
        by_a.setdefault((pa, va), []).append(f"`{vb}`" if pb == pa else f"`{pb} / {vb}`")
    return "; ".join(f"`{pa} / {va}` vs {', '.join(bs)}" for (pa, va), bs in by_a.items())


NOT_RUN_ANCHOR = "ablation-pairs-not-run-yet"  # the anchor of runs.md's heading "Ablation pairs not run yet"


def not_run_line(pending, link=f"runs.md#{NOT_RUN_ANCHOR}") -> str:
    """One line for an experiment's ablations with a run missing (_not_run): how many, which, and
    where their commands are (results/runs.md, pending_table)."""
    return (f"Not run yet: {len(pending)} ablation pair(s) ({_short_pairs(p['ablation'] for p in pending)}); "
            f"the commands that make them: [runs.md]({link}).")


def pending_table(pending) -> str | None:
    """results/runs.md's table of the ablations not run yet, one row per ablation (the experiments
    it waits in together): its question, A, B, the runs missing, and the commands that make them;
    None without any. `pending`: sections' entries ({"ablation", "missing", "experiment"})."""
    by_pair: dict = {}
    for p in pending:
        ab = p["ablation"]
        entry = by_pair.setdefault((ab["question"], tuple(ab["a"]), tuple(ab["b"])), {**p, "experiments": []})
        dataset, fingerprint, split = p["experiment"]
        where = f"{dataset} (`{str(fingerprint)[:10]}`), {split}"
        if where not in entry["experiments"]:
            entry["experiments"].append(where)
    if not by_pair:
        return None
    rows = [f"| {p['ablation']['question']} | `{' / '.join(p['ablation']['a'])}` | `{' / '.join(p['ablation']['b'])}` | "
            f"{', '.join(f'`{a} / {b}`' for a, b in p['missing'])} | {'; '.join(p['experiments'])} | "
            f"`{'`; `'.join(p['ablation']['commands'])}` |" for p in by_pair.values()]
    return ("| question | A | B | missing | experiment | commands |\n" + "|---" * 6 + "|\n" + "\n".join(rows))


def paired_on_shared_ids(results_dir, a, b, n_boot=2000, seed=0) -> dict:
    """Paired bootstrap of MAE(a) - MAE(b) on the test images both runs were evaluated on, for two
    runs of different datasets that share ids (rsna-512's radiographs are also thumbnails in
    rsna-thumbs100, and the id-hash split puts each in the same split in both). Refuses pairs that
    share fewer than 10 images or disagree on an image's reference age."""
    (run_a, split_a), (run_b, split_b) = a, b
    pa, pb = read_predictions(results_dir, run_a, split_a), read_predictions(results_dir, run_b, split_b)
    merged = pa.merge(pb, on="id", suffixes=("_a", "_b"))
    if len(merged) < 10:
        raise ExperimentMismatch(f"{label(run_a)} and {label(run_b)} share {len(merged)} test images; a paired "
                                 "comparison across datasets needs at least 10")
    return _bootstrap_merged(merged, run_a, run_b, n_boot, seed)


def across_data_rows(results_dir, members, runs, ablations, n_boot=2000, pending: list | None = None,
                     paired_runs: set | None = None) -> list[str]:
    """The ablations whose two runs were trained on different datasets (`"across_data": True`: e.g.
    the same network on the 512-px radiographs, A, and on the thumbnails, B), A being a run of this
    experiment and B its own dataset's test evaluation, paired on the test images both hold; rows
    of the ablation table (ABLATION_HEAD), the factor cell saying where B was tested, how many
    images both hold and each run's MAE on them, and when B is the run A started from
    (`--init-from`), that too. An ablation with a run missing goes to `pending` (_not_run);
    `paired_runs`, a set, gets (A's label, B's run directory) of each row."""
    here = {(r.get("paper"), r.get("variant")): (r, s) for r, s in members}
    elsewhere = {}
    for r in runs:
        if "test" in r.get("evaluations", {}):
            elsewhere.setdefault((r.get("paper"), r.get("variant")), (r, "test"))
    rows = []
    for ab in ablations:
        a, b = here.get(tuple(ab["a"])), elsewhere.get(tuple(ab["b"]))
        names = [f"`{p} / {v}`" for p, v in (ab["a"], ab["b"])]
        try:
            r = paired_on_shared_ids(results_dir, a, b, n_boot) if a and b else None
        except ExperimentMismatch as e:
            rows.append(f"| {ab['question']} | {ab['factor']} | {names[0]} | {names[1]} | not paired: {e} | — | — |")
            continue
        if r:
            source = source_run(results_dir, a[0])
            started = ("; B is also the run A started from (`--init-from`)"
                       if source is not None and source[0]["_dir"] == b[0].get("_dir") else "")
            caveat = ablation_caveat(ab)
            rows.append(f"| {ab['question']} | {ab['factor']}; B tested on {experiment_key(*b)[0]}, paired on the "
                        f"{r['n']} test images both hold (MAE A {r['mae_a']:.2f}, B {r['mae_b']:.2f}){started} | "
                        f"{names[0]} | {names[1]} | {_pair_cell(r)} | {r['verdict']}{caveat} | — |")
            if paired_runs is not None:
                paired_runs.add((label(a[0]), b[0].get("_dir")))
        else:
            _not_run(ab, (a, b), pending)
    return rows


def across_data_table(results_dir, members, runs, ablations, n_boot=2000) -> str:
    return ABLATION_HEAD + "\n" + "\n".join(across_data_rows(results_dir, members, runs, ablations, n_boot))


def source_run(results_dir, run) -> tuple | None:
    """(record, "test") of the run a run started from (`--init-from`), when that run lies inside the
    results folder and was evaluated on its test split; its "_dir" relative to the folder."""
    source = (run.get("init_from") or {}).get("run")
    if not source:
        return None
    results_dir = Path(results_dir).resolve()
    path = Path(source) if Path(source).is_absolute() else results_dir.parent / source
    path = path.resolve()
    if not path.is_relative_to(results_dir) or not RunDir(path).has_record():
        return None
    record = RunDir(path).record()
    if "test" not in record.get("evaluations", {}):
        return None
    record["_dir"] = path.relative_to(results_dir).as_posix()
    return record, "test"


STARTED_FROM = "What did training on this data add to the run it started from?"


def started_from_rows(results_dir, members, n_boot=2000, skip=()) -> list[str]:
    """Each run started from another one (`--init-from`) against that run, paired on the test images
    both hold: what training on this data added to the network it began with; rows of the
    ablation table (ABLATION_HEAD). None when no run of the experiment started from an evaluated
    run inside the results folder: []. `skip`: (label, run directory) pairs already in the table
    (across_data_rows' `paired_runs`), which would repeat the same numbers."""
    rows = []
    for run, split in members:
        source = source_run(results_dir, run)
        if source is None or (label(run), source[0]["_dir"]) in skip:
            continue
        start = f"`{source[0]['_dir']}`"
        try:
            r = paired_on_shared_ids(results_dir, (run, split), source, n_boot)
        except ExperimentMismatch as e:
            rows.append(f"| {STARTED_FROM} | A against the run it started from (`--init-from`) | `{label(run)}` | "
                        f"{start} | not paired: {e} | — | — |")
            continue
        rows.append(f"| {STARTED_FROM} | A against the run it started from (`--init-from`, B: "
                    f"{experiment_key(*source)[0]}, {source[0].get('epochs_done', '?')} epochs), paired on the {r['n']} "
                    f"test images both hold (MAE A {r['mae_a']:.2f}, B {r['mae_b']:.2f}) | `{label(run)}` | {start} | "
                    f"{_pair_cell(r)} | {r['verdict']} | — |")
    return rows


def started_from_table(results_dir, members, n_boot=2000) -> str | None:
    rows = started_from_rows(results_dir, members, n_boot)
    return ABLATION_HEAD + "\n" + "\n".join(rows) if rows else None


# ------------------------------------------------------------- training time (learning curves)

def learning_curve(results_dir, run) -> pd.DataFrame | None:
    """Validation MAE against cumulative training minutes (across resumes), one row per epoch, from the
    run's metrics.csv; None for a run without one (per-sex sub-runs) or from before the kit timed
    its epochs (no train_seconds column)."""
    path = Path(results_dir) / run["_dir"] / "metrics.csv"
    if not path.is_file():
        return None
    try:
        m = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None
    if not {"epoch", "train_seconds", "val_mae"} <= set(m.columns):
        return None
    m = m.drop_duplicates("epoch", keep="last").dropna(subset=["val_mae", "train_seconds"])  # a resumed epoch counts once
    if m.empty:
        return None
    return pd.DataFrame({"epoch": m["epoch"].astype(int) + 1, "minutes": m["train_seconds"] / 60.0,
                         "val_mae": m["val_mae"]}).reset_index(drop=True)


def minutes_to_reach(curve: pd.DataFrame, mae: float):
    """(minutes, epoch) at the end of the first epoch whose validation MAE is at or below `mae`; None if never."""
    hit = curve[curve["val_mae"] <= mae + 1e-9]
    return None if hit.empty else (float(hit["minutes"].iloc[0]), int(hit["epoch"].iloc[0]))


def time_to_common_level(results_dir, run_a, run_b) -> str:
    """What a factor buys in training time: the validation MAE both runs reach (the worse of their two
    best epochs) and the training minutes each needed to get there, on its own hardware. Minutes
    are comparable only between runs on the same hardware, which the cell names."""
    curves = [learning_curve(results_dir, r) for r in (run_a, run_b)]
    if any(c is None for c in curves):
        return "— (no per-epoch training times in metrics.csv)"
    level = max(float(c["val_mae"].min()) for c in curves)
    (ma, ea), (mb, eb) = (minutes_to_reach(c, level) for c in curves)  # each reaches its own best, so both reach it
    devices = {r.get("hardware", {}).get("device", "?") for r in (run_a, run_b)}
    where = devices.pop() if len(devices) == 1 else "different hardware: not comparable"
    return f"to {level:.2f} months: A {ma:.1f} min (epoch {ea}), B {mb:.1f} min (epoch {eb}); {where}"


_REFERENCES: dict = {}  # (key, data_dir) -> mean_predictor's answer; keyed by content fingerprint, so never stale


def mean_predictor(key, data_dir=None, trained_on: dict | None = None) -> dict | None:
    """The no-learning reference of an experiment computed here, for records evaluated before evaluate
    kept it (experiment_reference reads theirs): MAE on its split of predicting the training
    split's mean age, pooled and per sex, from the dataset's own labels, or, for runs evaluated on
    another dataset than they were trained on (`trained_on`: {"dataset", "fingerprint"}), from the
    training split of that one. None when a dataset is not built on this machine or its content
    differs from the runs' (fingerprint). A found reference is kept for the process: the plots and
    the tables of one `compare` read the labels once."""
    cache_key = (key, str(data_dir), str(trained_on))
    if cache_key in _REFERENCES:
        return _REFERENCES[cache_key]
    from common import data
    dataset, fingerprint, split = key
    handle = data.open_built(dataset, data_dir)
    train_handle = handle
    if trained_on:
        train_handle = data.open_built(trained_on["dataset"], data_dir)
        if train_handle is None or train_handle.fingerprint() != trained_on.get("fingerprint"):
            return None
    if handle is None or handle.fingerprint() != fingerprint or split not in handle.splits or \
            "train" not in train_handle.splits:
        return None  # not kept: the dataset may be built later in the same process
    reference = no_learning(handle, split, train_handle)
    _REFERENCES[cache_key] = reference
    return reference


def trained_elsewhere(members) -> list[tuple]:
    """[(dataset, fingerprint)] the members were trained on where that is not the experiment's own
    dataset (evaluations made with `evaluate --eval-data`)."""
    return sorted({(ev["trained_on"]["dataset"], ev["trained_on"].get("fingerprint"))
                   for ev in (r["evaluations"][s] for r, s in members) if ev.get("trained_on")})


def experiment_reference(key, members, data_dir=None) -> dict | None:
    """The no-learning reference of an experiment: the one its runs' evaluations carry (evaluate
    computes it, common/reference.py), else, for records evaluated before that, mean_predictor, with
    the training means of the one dataset its runs were trained on when that is another one."""
    stored = [ev["no_learning"] for ev in (r["evaluations"][s] for r, s in members) if ev.get("no_learning")]
    if stored:  # runs trained on different data (evaluate --eval-data) disagree: no one reference then
        return stored[0] if all(ref == stored[0] for ref in stored) else None
    trained_on = trained_elsewhere(members)
    return mean_predictor(key, data_dir, trained_on=dict(zip(("dataset", "fingerprint"), trained_on[0]))
                          if len(trained_on) == 1 else None)


def slug(key) -> str:
    dataset, fingerprint, split = key
    return re.sub(r"[^A-Za-z0-9]+", "-", f"{dataset}-{str(fingerprint)[:10]}-{split}").strip("-")


def uncertainty(run, split) -> dict | None:
    """The evaluation's split-conformal report (its extra_metrics' "uncertainty": coverage and mean
    width per level, Spearman of the predicted scale with the absolute error), None without one."""
    u = (run["evaluations"][split].get("extra_metrics") or {}).get("uncertainty")
    return u if isinstance(u, dict) and u.get("levels") else None


def uncertainty_table(members) -> str | None:
    """One row per run of the experiment that reports conformal intervals (uncertainty), by MAE: n,
    the empirical coverage and the mean width at each level, the Spearman correlation of the
    predicted scale with the absolute error, and the data the intervals were calibrated on; None
    when no run reports them."""
    have = [(run, u) for run, split in sorted(members, key=lambda m: _primary(*m)[0]["mae"]["value"])
            if (u := uncertainty(run, split))]
    if not have:
        return None
    levels = sorted({str(level) for _, u in have for level in u["levels"]}, key=float)
    said = " / ".join(levels)

    def number(x, scale=1.0, digits=1):
        return "—" if x is None or x != x else f"{scale * x:.{digits}f}"
    rows = []
    for run, u in have:
        got = [u["levels"].get(level, {}) for level in levels]
        rho = u.get("spearman_scale_vs_abs_error")
        rho = "— (one scale for all: a point head)" if u.get("constant_scale") else number(rho, digits=3)
        fit = u.get("calibration") or {}
        fitted = (f"{fit.get('dataset', '?')} {fit.get('split', '?')} ({fit.get('images', '?')})" if fit else "—")
        if u.get("in_sample"):
            fitted += ": the test split itself, coverage in-sample"
        rows.append(f"| `{label(run)}` | {u.get('images', '?')} | {' / '.join(number(m.get('coverage'), 100) for m in got)} "
                    f"| {' / '.join(number(m.get('mean_width_months')) for m in got)} | {rho} | {fitted} |")
    return (f"| conformal intervals: run | n | coverage at {said} % | mean width at {said} % (months) "
            f"| Spearman(scale, abs error) | calibrated on (images) |\n" + "|---" * 6 + "|\n" + "\n".join(rows))


def _waits_here(entry, members, runs, trained_on) -> bool:
    """Whether an ablation with a run missing in this experiment (_not_run) is listed here as not run
    yet: not when a run it misses has been evaluated somewhere (the pair is then listed where both
    have predictions), nor in an experiment the runs were only evaluated on (`evaluate
    --eval-data`) when the run it has belongs to an experiment of its own data too (listed there)."""
    evaluated = {(r.get("paper"), r.get("variant")) for r in runs if r.get("evaluations")}
    if any(arm in evaluated for arm in entry["missing"]):
        return False
    if not trained_on:
        return True
    ab = entry["ablation"]
    present = [tuple(arm) for arm in (ab["a"], ab["b"]) if tuple(arm) not in entry["missing"]]
    home = {(r.get("paper"), r.get("variant")) for r in runs
            if any(not ev.get("trained_on") for ev in r.get("evaluations", {}).values())}
    return not any(arm in home for arm in present)


def _experiment(key, members, runs, results_dir, ablations, n_boot, plots_linked, written, pending) -> dict:
    """Everything one experiment's section says, computed once (the bootstraps, the CSV of every
    pair, the ablation rows): its heading, the paired results against the best run, the notes'
    parts, the ablation rows, the ablations not run yet and the conformal table. Both the full
    section (section_lines) and its summary (summary_lines) are written from it."""
    dataset, fingerprint, split = key
    shared = shared_hardware(members)
    plot_dir = Path(results_dir) / "comparison" / slug(key)
    csv_path = plot_dir / "pairwise_mae_differences.csv" if len(members) > 1 else None
    versus = versus_best(results_dir, members, n_boot, csv_path=csv_path)
    if csv_path is not None and written is not None:
        written.append(csv_path)
    trained_on = trained_elsewhere(members)
    relevant = [ab for ab in ablations if not ab.get("across_data") and any(
        (r.get("paper"), r.get("variant")) in (tuple(ab["a"]), tuple(ab["b"])) for r, _ in members)]
    missing: list = []
    rows = ablation_rows(results_dir, members, relevant, n_boot, missing)
    if split == "test" and not trained_on:
        across = [ab for ab in ablations if ab.get("across_data") and any(
            (r.get("paper"), r.get("variant")) == tuple(ab["a"]) for r, _ in members)]
        already: set = set()
        rows += across_data_rows(results_dir, members, runs, across, n_boot, missing, already)
        rows += started_from_rows(results_dir, members, n_boot, skip=already)
    missing = [dict(m, experiment=key) for m in missing if _waits_here(m, members, runs, trained_on)]
    if pending is not None:
        pending += missing
    pngs = sorted(p.name for p in plot_dir.glob("*.png") if p.name != "forest_mae.png") \
        if plots_linked and plot_dir.exists() else []
    return {"key": key, "members": members, "slug": slug(key),
            "heading": f"{dataset} (`{str(fingerprint)[:10]}`), {split} split: {len(members)} run(s)"
                       + (f", trained on {shared}" if shared else ""),
            "forest": plots_linked and (plot_dir / "forest_mae.png").is_file(), "versus": versus,
            "pairs_csv": csv_path is not None, "trained_on": trained_on,
            "reference": experiment_reference(key, members), "pngs": pngs, "ablation_rows": rows,
            "missing": missing, "intervals": uncertainty_table(members)}


FOREST_ALT = "MAE per run with 95% intervals, grouped by paper"


def _context_notes(e) -> list[str]:
    """The sentences both the section and its summary say under the table: where the runs were
    trained when not on these images, and the no-learning reference."""
    notes = []
    if e["trained_on"]:
        notes.append("Evaluated on these images only: the runs were trained on "
                     + ", ".join(f"{d} (`{str(f)[:10]}`)" for d, f in e["trained_on"])
                     + " (`evaluate --eval-data`); the table compares them on data none of them saw in training.")
    reference = e["reference"]
    if reference:
        source = f"{e['trained_on'][0][0]}'s training-split" if len(e["trained_on"]) == 1 else "training-split"
        notes.append(f"No-learning reference on these {reference['n']} images: predicting each sex's {source} "
                     f"mean age gives MAE **{reference['per_sex']:.2f}** months (one mean for both sexes: "
                     f"{reference['pooled']:.2f}); a method near it has learned little.")
    return notes


def section_lines(e, paper_cells: dict, n_boot=2000, here="", root="") -> list[str]:
    """The full section of one experiment (_experiment), below its heading: the forest plot, the
    table of every run, the notes (no-learning reference, every pair's CSV, the other plots), the
    ablation table, the line of the ablations not run yet and the conformal table. `here`: the
    prefix of the links to the experiment's folder (its plots and CSV), `root`: to the results
    folder (runs.md)."""
    out = []
    if e["forest"]:
        out += [f"![{FOREST_ALT}]({here}forest_mae.png)", ""]
    out += [comparison_table(e["members"], paper_cells, e["versus"]), ""]
    notes = _context_notes(e)
    if e["pairs_csv"]:
        notes.append(f"Every pair ({n_boot:,} resamples): [pairwise_mae_differences.csv]({here}"
                     "pairwise_mae_differences.csv).")
    if e["pngs"]:
        notes.append("Plots: " + ", ".join(f"[{p[:-4].replace('_', ' ')}]({here}{p})" for p in e["pngs"]) + ".")
    if e["ablation_rows"]:
        notes.append("Ablations below: each pair differs in one factor, paired on the same test images (a network "
                     "against itself on other data on the images both hold: the id-hash split puts an id in the "
                     "same split in both).")
    if e["intervals"]:
        notes.append("Conformal intervals (the last table, runs that report them): the share of test images whose "
                     "interval holds the reference age, the interval's mean width, and the Spearman correlation of "
                     "the predicted scale with the absolute error.")
    if notes:
        out += [" ".join(notes), ""]
    if e["ablation_rows"]:
        out += [ABLATION_HEAD + "\n" + "\n".join(e["ablation_rows"]), ""]
    if e["missing"]:
        out += [not_run_line(e["missing"], link=f"{root}runs.md#{NOT_RUN_ANCHOR}"), ""]
    if e["intervals"]:
        out += [e["intervals"], ""]
    return out


BEST_HEAD = ("| best run of each paper | MAE months [95% CI] | n | input px | initial weights | precision | train time "
             "| vs best run: MAE difference [95% CI] |\n" + "|---" * 8 + "|")


def best_of_papers_table(members, versus: dict | None = None) -> str:
    """The summary table of one experiment: the lowest-MAE run of each paper, by MAE (its label
    says of how many runs of the paper it is the best), with its MAE and 95% interval, n, input
    size, initial weights, precision, train time and the paired difference to the experiment's
    best run with its verdict (versus_best; "—" without pairs)."""
    ordered = sorted(members, key=lambda m: _primary(*m)[0]["mae"]["value"])
    runs_of: dict = {}
    for run, _ in ordered:
        runs_of[run.get("paper")] = runs_of.get(run.get("paper"), 0) + 1
    shared = shared_hardware(members)
    rows, seen = [], set()
    for run, split in ordered:
        if run.get("paper") in seen:
            continue
        seen.add(run.get("paper"))
        m, _ = _primary(run, split)
        ev = run["evaluations"][split]
        many = runs_of[run.get("paper")]
        pair = (versus or {}).get(label(run))
        if not versus:
            vs = "—"
        elif pair is None:
            vs = "**best run**"
        else:
            vs = f"{against_best(pair)[0]}, {AGAINST_BEST.get(pair['verdict'], pair['verdict'])}"
        minutes = f"{run.get('wall_time_s', float('nan')) / 60:.1f} min"
        rows.append("| " + " | ".join([
            f"`{label(run)}`" + (f" (best of {many})" if many > 1 else ""), "**" + _ci(m["mae"]) + "**",
            str(ev.get("images", "?")), str(run.get("image_size", "?")), results.initial_weights(run, short=True),
            str(run.get("precision", "?")),
            minutes if shared else f"{minutes} ({run.get('hardware', {}).get('device', '?')})", vs]) + " |")
    return BEST_HEAD + "\n" + "\n".join(rows)


def _count(n, one, many=None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def summary_lines(e, page: str, here: str) -> list[str]:
    """The summary of one experiment (_experiment) for results/README.md, below its heading: the
    forest plot, the best run of each paper, the no-learning reference and one line saying what
    the experiment's own page (`page`, its link) adds. `here`: the prefix of the links to the
    experiment's folder."""
    out = [f"![{FOREST_ALT}]({here}forest_mae.png)", ""] if e["forest"] else []
    out += [best_of_papers_table(e["members"], e["versus"]), ""]
    n = len(e["members"])
    parts = [f"**[{'all ' + str(n) + ' runs' if n > 1 else 'the run'}]({page})** with read-out, bias, epochs and "
             "the paper's own number"]
    if e["ablation_rows"] or e["missing"]:
        parts.append(_count(len(e["ablation_rows"]), "ablation pair")
                     + (f" ({len(e['missing'])} more not run yet)" if e["missing"] else ""))
    if e["intervals"]:
        with_intervals = sum(1 for run, split in e["members"] if uncertainty(run, split))
        parts.append(f"conformal intervals of {_count(with_intervals, 'run')}")
    if e["pairs_csv"]:
        parts.append("every pair's bootstrap")
    if e["pngs"]:
        parts.append(_count(len(e["pngs"]), "more plot"))
    return out + [" ".join([*_context_notes(e), "The experiment's page: " + "; ".join(parts) + "."]), ""]


def _experiments(runs, results_dir, ablations, n_boot, plots_linked, written, pending) -> list[dict]:
    """_experiment of each experiment, most runs first."""
    return [_experiment(key, members, runs, results_dir, ablations, n_boot, plots_linked, written, pending)
            for key, members in sorted(experiments(runs).items(), key=lambda kv: (-len(kv[1]), kv[0]))]


def sections(runs, paper_cells: dict, results_dir, ablations=(), n_boot=2000, plots_linked=True,
             written: list | None = None, pending: list | None = None) -> str:
    """Every experiment's full section in one text, most runs first, its links relative to the
    results folder: its forest plot, one table (each run against the best run), the no-learning
    reference, links to every pair (a CSV) and the plots, one ablation table (the registry's
    ablations in this experiment, those across datasets, and each run against the run it started
    from), one line for the ablations not run yet, and the conformal intervals of the runs that
    report them. `written`, a list, gets the path of every CSV written; `pending`, a list, the
    ablations not run yet, each with its experiment (for results/runs.md: pending_table).
    results/README.md has their summaries and each experiment's page its section (overview)."""
    found = _experiments(runs, results_dir, ablations, n_boot, plots_linked, written, pending)
    if not found:
        return "No evaluated runs yet."
    out = []
    for e in found:
        out += [f"### {e['heading']}"]  # a heading needs no blank line after it
        out += section_lines(e, paper_cells, n_boot, here=f"comparison/{e['slug']}/")
    return "\n".join(out)


PAGE = "README.md"  # each experiment's page, in its folder of results/comparison/ beside its plots


def overview(runs, paper_cells: dict, results_dir, ablations=(), n_boot=2000, plots_linked=True,
             written: list | None = None, pending: list | None = None, page=None) -> tuple[str, dict]:
    """(the experiments' part of results/README.md, {path of each experiment's page: its text}): per
    experiment, most runs first, its heading, forest plot, the best run of each paper, the
    no-learning reference and a link to its page, results/comparison/<experiment>/README.md,
    whose body is the experiment's full section (section_lines, its links relative to that
    folder). `page(heading, body) -> text` wraps each body (the caller's header and introduction);
    `written` and `pending` as in sections; the pages' keys are their paths."""
    found = _experiments(runs, results_dir, ablations, n_boot, plots_linked, written, pending)
    if not found:
        return "No evaluated runs yet.", {}
    out, pages = [], {}
    for e in found:
        here = f"comparison/{e['slug']}/"
        out += [f"### {e['heading']}"] + summary_lines(e, here + PAGE, here)
        body = "\n".join(section_lines(e, paper_cells, n_boot, here="", root="../../"))
        pages[Path(results_dir) / "comparison" / e["slug"] / PAGE] = page(e["heading"], body) if page else body
    return "\n".join(out), pages


# ------------------------------------------------------------------------------- plots

def plot_experiment(results_dir, key, members, out_dir) -> list[Path]:
    """MAE by age band per method, a Bland-Altman grid and a predicted-vs-reference grid; their paths.
    Each method has its own colour (method_colours) in all three; the grids' cells are drawn by the
    same code as a single run's plots (evaluation.draw_bland_altman, draw_predicted_vs_reference)."""
    frames = [(label(run), evaluation.prepare_predictions(read_predictions(results_dir, run, split)))
              for run, split in members]
    colours = method_colours([name for name, _ in frames])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{key[0]} ({key[2]} split)"

    # MAE by age band, one bar per method.
    bands = list(evaluation.AGE_BAND_LABELS)
    fig, ax = evaluation.new_figure((max(6, 1.2 * len(bands) + 1), 4))
    width = 0.8 / len(frames)
    for i, (name, d) in enumerate(frames):
        band = evaluation.age_band_labels(d["boneage_true"])
        err = np.abs(d["boneage_pred"] - d["boneage_true"]).to_numpy()
        mae = [err[band == b].mean() if np.any(band == b) else np.nan for b in bands]
        ax.bar(np.arange(len(bands)) + i * width - 0.4 + width / 2, mae, width, label=name, color=colours[name])
    ax.set_xticks(np.arange(len(bands)), [f"{b} y" for b in bands])
    ax.set_ylabel("MAE (months)")
    ax.set_title(f"MAE by reference age band — {title}")
    ax.legend(fontsize=8)
    io.atomic_savefig(fig, out_dir / "mae_by_age_band.png")
    paths = [out_dir / "mae_by_age_band.png"]

    cols = min(3, len(frames))
    rows = int(np.ceil(len(frames) / cols))
    drawers = {"bland_altman": evaluation.draw_bland_altman,
               "predicted_vs_reference": evaluation.draw_predicted_vs_reference}
    for kind, draw in drawers.items():
        fig, axes = evaluation.new_figure((4.2 * cols, 3.8 * rows), rows, cols, squeeze=False)
        for ax, (name, d) in zip(axes.ravel(), frames):
            draw(ax, d, legend=False, colour=colours[name])
            t, p = d["boneage_true"].to_numpy(), d["boneage_pred"].to_numpy()
            ax.set_title(f"{name}\nMAE {np.abs(p - t).mean():.1f} mo, n={len(t)}", fontsize=9)
            ax.xaxis.label.set_fontsize(8), ax.yaxis.label.set_fontsize(8)
        for ax in axes.ravel()[len(frames):]:
            ax.axis("off")
        fig.suptitle(title)
        io.atomic_savefig(fig, out_dir / f"{kind}_grid.png", dpi=90)  # a grid of dense scatters: kept small
        paths.append(out_dir / f"{kind}_grid.png")
    return paths


def method_colours(names) -> dict:
    """{method: colour}, a different colour for each method of one plot, in the order given (tab10,
    tab20 beyond ten methods, evenly spaced hues beyond twenty)."""
    import matplotlib
    from matplotlib import colors
    names = list(dict.fromkeys(names))
    if len(names) <= 20:
        cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
        return {name: colors.to_hex(cmap(i)) for i, name in enumerate(names)}
    cmap = matplotlib.colormaps["hsv"]
    return {name: colors.to_hex(cmap(i / len(names))) for i, name in enumerate(names)}


def paper_colours(runs) -> dict:
    """{paper: colour}, one distinct colour per paper (tab10, tab20 beyond ten papers), by paper
    name: a paper keeps its colour in every experiment's plots."""
    import matplotlib
    from matplotlib import colors
    papers = sorted({str(run.get("paper", "?")) for run in runs})
    cmap = matplotlib.colormaps["tab10" if len(papers) <= 10 else "tab20"]
    return {paper: colors.to_hex(cmap(i % cmap.N)) for i, paper in enumerate(papers)}


def forest_rows(members) -> list[dict]:
    """The forest plot's rows, top to bottom: papers in blocks, the block of the paper with the
    lowest MAE first, and within a block its runs by MAE. Each row: paper, label, estimate and
    the primary estimate's MAE with its 95% bootstrap interval (NaN where the record has none)."""
    def number(x):
        return float("nan") if x is None else float(x)
    rows = []
    for run, split in members:
        m, estimate = _primary(run, split)
        mae = m["mae"]
        rows.append({"paper": str(run.get("paper", "?")), "label": label(run), "estimate": estimate,
                     "mae": number(mae["value"]), "ci_low": number(mae.get("ci_low")),
                     "ci_high": number(mae.get("ci_high"))})
    best = {}
    for r in rows:
        best[r["paper"]] = min(best.get(r["paper"], np.inf), r["mae"])
    return sorted(rows, key=lambda r: (best[r["paper"]], r["paper"], r["mae"], r["label"]))


def plot_forest(key, members, out_dir, reference: dict | None = None, colours: dict | None = None) -> Path:
    """forest_mae.png: one row per run with its test MAE and 95% bootstrap interval, papers in
    blocks of their own colour (best paper first, runs by MAE within it), and the no-learning
    reference (mean_predictor: each sex's training-split mean age) as a dashed vertical line
    when it is known."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = forest_rows(members)
    colours = colours or paper_colours([run for run, _ in members])
    n_legend = len({r["paper"] for r in rows}) + bool(reference)
    legend_inches = 0.1 + 0.2 * int(np.ceil(n_legend / 3))  # below the axes, three entries a line
    height = 1.6 + 0.42 * len(rows) + legend_inches
    fig, ax = evaluation.new_figure((8, height), layout=None)
    y = np.arange(len(rows))[::-1]  # the first row at the top
    for yi, r in zip(y, rows):
        lo, hi = r["ci_low"], r["ci_high"]
        xerr = [[r["mae"] - lo if lo == lo else 0.0], [hi - r["mae"] if hi == hi else 0.0]]
        ax.errorbar(r["mae"], yi, xerr=xerr, fmt="o", color=colours[r["paper"]], ecolor=colours[r["paper"]],
                    capsize=3, markersize=5, linewidth=1.5)
        interval = f" [{lo:.2f}, {hi:.2f}]" if lo == lo and hi == hi else ""
        ax.annotate(f"{r['mae']:.2f}{interval}", (1.0, yi), xycoords=("axes fraction", "data"),
                    xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
    for yi, previous, r in zip(y[1:], rows, rows[1:]):  # a thin rule between two papers' blocks
        if r["paper"] != previous["paper"]:
            ax.axhline(yi + 0.5, color="0.85", linewidth=0.8)
    ax.set_yticks(y, [r["label"] for r in rows], fontsize=8)
    for tick, r in zip(ax.get_yticklabels(), rows):
        tick.set_color(colours[r["paper"]])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    handles = [Patch(color=colours[p], label=p) for p in dict.fromkeys(r["paper"] for r in rows)]
    if reference:
        ax.axvline(reference["per_sex"], color="0.3", linestyle="--", linewidth=1)
        handles.append(Line2D([], [], color="0.3", linestyle="--",
                                  label=f"no learning: each sex's training mean ({reference['per_sex']:.2f})"))
    fig.legend(handles=handles, fontsize=7, loc="lower center", ncol=3, frameon=False)
    ax.set_xlabel("test MAE, months (95% bootstrap interval)")
    run, split = members[0]
    n = run["evaluations"][split].get("images", "?")
    ax.set_title(f"MAE per run, grouped by paper — {key[0]} ({key[2]} split, n={n})", fontsize=9)
    ax.grid(axis="x", color="0.92")
    fig.tight_layout(rect=(0, legend_inches / height, 1, 1))
    path = Path(out_dir) / "forest_mae.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    io.atomic_savefig(fig, path)
    return path


def plot_learning_curves(results_dir, ablation, a_run, b_run, out_dir) -> Path | None:
    """Validation MAE against training minutes for the two runs of an ablation; None without curves."""
    curves = [learning_curve(results_dir, r) for r in (a_run, b_run)]
    if any(c is None for c in curves):
        return None
    fig, ax = evaluation.new_figure((6, 4))
    for role, run, c in (("A", a_run, curves[0]), ("B", b_run, curves[1])):
        ax.plot(c["minutes"], c["val_mae"], marker="o", markersize=3, label=f"{role}: {label(run)}")
    ax.set_xlabel(f"training minutes ({a_run.get('hardware', {}).get('device', '?')})")
    ax.set_ylabel("validation MAE (months)")
    ax.set_title(ablation["question"], fontsize=9)
    ax.legend(fontsize=8)
    (pa, va), (pb, vb) = ablation["a"], ablation["b"]
    path = Path(out_dir) / f"learning_curves_{pa}-{va}_vs_{pb}-{vb}.png"
    io.atomic_savefig(fig, path)
    return path


def plot_all(runs, results_dir, log=print, ablations=()) -> list[Path]:
    """Every experiment's plots in results/comparison/<experiment>/; `ablations` (handed in by the
    caller: reproductions.registry.ablations()) add each pair's learning curves. Logs each folder
    with the files written there and returns their paths."""
    colours = paper_colours(runs)
    written = []
    for key, members in experiments(runs).items():
        out = Path(results_dir) / "comparison" / slug(key)
        paths = [plot_forest(key, members, out, reference=experiment_reference(key, members), colours=colours)]
        paths += plot_experiment(results_dir, key, members, out)
        by_name = {(run.get("paper"), run.get("variant")): run for run, _ in members}
        for ab in ablations:
            a, b = by_name.get(tuple(ab["a"])), by_name.get(tuple(ab["b"]))
            if a and b:
                paths.append(plot_learning_curves(results_dir, ab, a, b, out))
        paths = [p for p in paths if p is not None]
        log(f"Wrote the plots of {key[0]} {key[2]} ({len(members)} runs) in {out}: "
            + ", ".join(p.name for p in paths))
        written += paths
    return written
