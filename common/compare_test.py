"""The comparison: golden table from fake run records, experiments kept apart, paired differences."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import compare, results


def metric(v, lo, hi):
    return {"value": v, "ci_low": lo, "ci_high": hi}


def fake_run(root, paper, variant, preds, fingerprint="f" * 16, split="test", truth=None, size=100):
    """A run directory with run.json and <split>/predictions.csv; metrics from the predictions."""
    name = f"{variant}_{fingerprint[:4]}_{split}"
    run = root / paper / name
    (run / split).mkdir(parents=True)
    truth = np.array([100.0, 120.0, 60.0, 200.0] if truth is None else truth)
    preds = np.asarray(preds, float)
    ids = [str(1000 + i) for i in range(len(truth))]
    pd.DataFrame({"id": ids, "boneage_true": truth, "boneage_pred": preds, "male": [0, 1] * (len(truth) // 2),
                  "abs_error": np.abs(preds - truth)}).to_csv(run / split / "predictions.csv", index=False)
    mae = float(np.abs(preds - truth).mean())
    overall = {"mae": metric(mae, mae - 1, mae + 1), "rmse": metric(mae + 1, mae, mae + 2),
               "bias": metric(0.5, -1.0, 2.0), "within_12": metric(0.5, 0.25, 0.75)}
    record = {"paper": paper, "variant": variant, "image_size": size, "epochs": 14, "epochs_done": 14,
              "wall_time_s": 600, "hardware": {"device": "CPU (2 cores)"}, "precision": "float32",
              "dataset": {"name": "folder/rsna-thumbs100", "fingerprint": fingerprint},
              "evaluations": {split: {"images": len(truth), "primary_estimate": "regression",
                                      "estimates": {"regression": overall}, "commit": "0" * 40}}}
    (run / "run.json").write_text(json.dumps(record))
    return run


def loaded(root):
    return [r for r in results.load_runs(root) if r.get("evaluations")]


def test_golden_table(tmp_path):
    fake_run(tmp_path, "rsna17_winner", "thumbs", [110, 120, 60, 200])
    fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200])
    runs = loaded(tmp_path)
    (key, members), = compare.experiments(runs).items()
    assert key == ("folder/rsna-thumbs100", "f" * 16, "test")
    versus = compare.versus_best(tmp_path, members, n_boot=50)
    assert list(versus) == ["larson18 / thumbs"]  # the best run is not paired with itself
    table = compare.comparison_table(members, {"larson18": "MAD 6.0 mo"}, versus)
    r = versus["larson18 / thumbs"]
    assert table.splitlines() == [
        "| method (paper / variant) | read-out | input px | MAE months [95% CI] | bias | n | epochs | initial weights | "
        "precision | train time | MAE − best run's [95% CI] | vs best run | paper's own |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        "| `rsna17_winner / thumbs` | regression | 100 | **2.50 [1.50, 3.50]** | 0.50 | 4 | 14/14 | random | float32 "
        "| 10.0 min | **best run** | — | — |",
        "| `larson18 / thumbs` | regression | 100 | **10.00 [9.00, 11.00]** | 0.50 | 4 | 14/14 | random | float32 "
        f"| 10.0 min | +7.50 [{-r['ci_high']:+.2f}, {-r['ci_low']:+.2f}] | no real difference, p {r['p_value']:.3f} "
        "| MAD 6.0 mo |"]
    # The pair is (best, run) turned round: this run's MAE minus the best's, and its verdict.
    assert r["difference"] == pytest.approx(-7.5) and r["verdict"] == "no real difference"  # 4 images
    assert compare.against_best({"difference": -2.0, "ci_low": -3.0, "ci_high": -1.0, "p_value": 0.001,
                                 "verdict": "A better (real)"}) == ("+2.00 [+1.00, +3.00]", "worse (real), p 0.001")
    assert compare.against_best(None) == ("**best run**", "—")


def test_a_table_of_runs_on_different_hardware_names_each_runs_device(tmp_path):
    gpu = fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200])
    fake_run(tmp_path, "rsna17_winner", "thumbs", [110, 120, 60, 200])
    record = json.loads((gpu / "run.json").read_text())
    record.update(hardware={"device": "GPU (H200)"}, weights="/w/resnet50_notop.h5")
    (gpu / "run.json").write_text(json.dumps(record))
    (_, members), = compare.experiments(loaded(tmp_path)).items()
    assert compare.shared_hardware(members) is None
    table = compare.comparison_table(members, {})
    assert "| ImageNet | float32 | 10.0 min (GPU (H200)) | — | — | — |" in table
    assert "| random | float32 | 10.0 min (CPU (2 cores)) | — | — | — |" in table
    text = compare.sections(loaded(tmp_path), {}, tmp_path, n_boot=50, plots_linked=False)
    assert text.startswith("### folder/rsna-thumbs100 (`ffffffffff`), test split: 2 run(s)\n")  # no shared device


def test_runs_of_different_splits_or_data_never_share_a_table(tmp_path):
    fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200])
    fake_run(tmp_path, "rsna17_winner", "thumbs", [110, 120, 60, 200], split="validation")
    fake_run(tmp_path, "rsna17_winner", "other", [110, 120, 60, 200], fingerprint="e" * 16)
    runs = loaded(tmp_path)
    groups = compare.experiments(runs)
    assert len(groups) == 3 and all(len(m) == 1 for m in groups.values())
    everything = [m for members in groups.values() for m in members]
    with pytest.raises(compare.ExperimentMismatch, match="different experiments"):
        compare.comparison_table(everything, {})
    with pytest.raises(compare.ExperimentMismatch, match="different data or splits"):
        compare.paired(tmp_path, everything[0], everything[1])


def test_a_dataset_derived_from_the_thumbnails_joins_their_experiment(tmp_path):
    """Registered canvases (same ids, labels, split) pair with runs on the thumbnails they came from."""
    fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200])
    derived = fake_run(tmp_path, "iglovikov18", "thumbs-ensemble", [100, 120, 60, 190], fingerprint="d" * 16)
    record = json.loads((derived / "run.json").read_text())
    record["evaluations"]["test"].update(source_dataset="folder/rsna-thumbs100", source_fingerprint="f" * 16)
    (derived / "run.json").write_text(json.dumps(record))
    fake_run(tmp_path, "rsna17_winner", "other", [110, 120, 60, 200], fingerprint="e" * 16)
    groups = compare.experiments(loaded(tmp_path))
    assert sorted(len(m) for m in groups.values()) == [1, 2]
    members = groups[("folder/rsna-thumbs100", "f" * 16, "test")]
    assert compare.paired(tmp_path, *members)["n"] == 4


def test_paired_difference_is_zero_for_identical_predictions_and_signed_otherwise(tmp_path):
    fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200])
    fake_run(tmp_path, "larson18", "copy", [100, 100, 80, 200])
    fake_run(tmp_path, "rsna17_winner", "thumbs", [100, 120, 60, 200])
    members = {r["variant"] + r["paper"]: (r, "test") for r in loaded(tmp_path)}
    same = compare.paired(tmp_path, members["thumbslarson18"], members["copylarson18"])
    assert (same["difference"], same["ci_low"], same["ci_high"], same["p_value"]) == (0.0, 0.0, 0.0, 1.0)
    assert same["verdict"] == "no real difference"
    better = compare.paired(tmp_path, members["thumbsrsna17_winner"], members["thumbslarson18"])
    assert better["difference"] == pytest.approx(0.0 - 10.0)


def test_paired_refuses_different_test_images(tmp_path):
    fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200])
    fake_run(tmp_path, "rsna17_winner", "thumbs", [100, 120], truth=[100.0, 120.0])
    a, b = [(r, "test") for r in loaded(tmp_path)]
    with pytest.raises(compare.ExperimentMismatch, match="different test images"):
        compare.paired(tmp_path, a, b)


def test_ablation_rows_report_the_pair_or_what_is_missing(tmp_path):
    fake_run(tmp_path, "rsna17_winner", "thumbs", [110, 120, 60, 200])
    fake_run(tmp_path, "rsna17_winner", "thumbs_nosex", [120, 130, 70, 210])
    members = [(r, "test") for r in loaded(tmp_path)]
    ablations = [{"question": "sex?", "factor": "sex_input", "a": ("rsna17_winner", "thumbs"),
                  "b": ("rsna17_winner", "thumbs_nosex"), "commands": ["x"], "caveat": "fewer steps in B"},
                 {"question": "patches?", "factor": "patches", "a": ("rsna17_second", "thumbs"),
                  "b": ("rsna17_second", "thumbs_whole"), "commands": ["run a", "run b"]}]
    text = compare.ablation_table(tmp_path, members, ablations)
    assert "| sex? | sex_input | `rsna17_winner / thumbs` | `rsna17_winner / thumbs_nosex` | **-10.00**" in text
    assert "; caveat: fewer steps in B |" in text
    assert "| — (no per-epoch training times in metrics.csv) |" in text  # fake runs have no metrics.csv
    # A pair not run is no row with its commands: one line under the table, the commands in runs.md.
    assert "patches?" not in text and "run a" not in text
    assert text.endswith("\n\nNot run yet: 1 ablation pair(s) (`rsna17_second / thumbs` vs `thumbs_whole`); the commands "
                         "that make them: [runs.md](runs.md#ablation-pairs-not-run-yet).")
    pending = []
    assert len(compare.ablation_rows(tmp_path, members, ablations, n_boot=50, pending=pending)) == 1
    assert pending == [{"ablation": ablations[1], "missing": [("rsna17_second", "thumbs"), ("rsna17_second", "thumbs_whole")]}]


def timed_metrics(run_dir, val_mae, epoch_seconds):
    """A metrics.csv as common/train.epoch_clock writes it (train_seconds: cumulative)."""
    pd.DataFrame({"epoch": range(len(val_mae)), "val_mae": val_mae,
                  "epoch_seconds": epoch_seconds, "train_seconds": np.cumsum(epoch_seconds)}).to_csv(
        run_dir / "metrics.csv", index=False)


def test_an_ablation_reports_the_training_time_each_run_needed_to_reach_the_level_both_reach(tmp_path, monkeypatch):
    """Transfer (A) reaches 20 months at its 2nd epoch; scratch (B) gets there only at its 4th: the
    cell says so in minutes, and the pair's learning curves are drawn."""
    from reproductions.__main__ import main
    a = fake_run(tmp_path, "lite0_regressor", "r512", [110, 120, 60, 200])
    b = fake_run(tmp_path, "lite0_regressor", "r512_scratch", [120, 130, 70, 210])
    timed_metrics(a, [30.0, 18.0, 12.0, 11.0], [120, 120, 120, 120])
    timed_metrics(b, [40.0, 35.0, 25.0, 20.0], [60, 60, 60, 60])  # B's best, 20, is the level both reach
    members = [(r, "test") for r in loaded(tmp_path)]
    ablation = {"question": "transfer?", "factor": "weights", "a": ("lite0_regressor", "r512"),
                "b": ("lite0_regressor", "r512_scratch"), "commands": ["x"]}
    text = compare.ablation_table(tmp_path, members, [ablation])
    assert "| to 20.00 months: A 4.0 min (epoch 2), B 4.0 min (epoch 4); CPU (2 cores) |" in text
    timed_metrics(b, [40.0, 35.0, 25.0, 20.0], [90, 90, 90, 90])
    assert "A 4.0 min (epoch 2), B 6.0 min (epoch 4)" in compare.ablation_table(tmp_path, members, [ablation])
    assert compare.minutes_to_reach(compare.learning_curve(tmp_path, loaded(tmp_path)[0]), 5.0) is None  # never reached
    timed_metrics(b, [float("nan")] * 4, [90, 90, 90, 90])  # a diverged run: no curve, no crash
    assert "| — (no per-epoch training times in metrics.csv) |" in compare.ablation_table(tmp_path, members, [ablation])
    timed_metrics(b, [40.0, 35.0, 25.0, 20.0], [90, 90, 90, 90])

    import reproductions.ablations
    monkeypatch.setattr(reproductions.ablations, "ABLATIONS", (ablation,))
    assert main(["compare", "--results", str(tmp_path)]) == 0
    assert (tmp_path / "comparison" / "folder-rsna-thumbs100-ffffffffff-test" / "learning_curves_lite0_regressor-r512_vs_lite0_regressor-r512_scratch.png").is_file()
    page = tmp_path / "comparison" / "folder-rsna-thumbs100-ffffffffff-test" / "README.md"
    assert "| transfer? | weights | `lite0_regressor / r512` |" in page.read_text()  # the tables got it too
    assert "1 ablation pair; " in (tmp_path / "README.md").read_text()  # the README says the page has it


def test_compare_command_writes_the_readme_and_plots(tmp_path, capsys):
    from reproductions.__main__ import main
    fake_run(tmp_path, "rsna17_winner", "thumbs", [110, 120, 60, 200])
    fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200])
    assert main(["compare", "--results", str(tmp_path)]) == 0
    text = (tmp_path / "README.md").read_text()
    assert "## Side by side, one experiment at a time" in text and "On the full RSNA data with a GPU" in text
    assert "| `rsna17_winner / thumbs` | **2.50 [1.50, 3.50]** |" in text and "| **best run** |" in text
    assert "| `larson18 / thumbs` | **10.00 [9.00, 11.00]** |" in text and ", no real difference |" in text  # paired
    here = "comparison/folder-rsna-thumbs100-ffffffffff-test"
    assert f"![MAE per run with 95% intervals, grouped by paper]({here}/forest_mae.png)" in text
    assert f"**[all 2 runs]({here}/README.md)**" in text and "every pair's bootstrap; 3 more plots." in text
    # The experiment's page, beside its plots: every run in full, every pair, the other plots, links from there.
    page = (tmp_path / here / "README.md").read_text()
    assert page.startswith(results.GENERATED) and "[results/README.md](../../README.md)" in page
    assert "| `rsna17_winner / thumbs` | regression |" in page and "| **best run** | — |" in page
    assert "| `larson18 / thumbs` | regression |" in page and "| no real difference, p " in page
    assert "Every pair (2,000 resamples): [pairwise_mae_differences.csv](pairwise_mae_differences.csv)" in page
    plots = sorted(p.name for p in (tmp_path / "comparison").glob("*/*.png"))
    assert plots == ["bland_altman_grid.png", "forest_mae.png", "mae_by_age_band.png", "predicted_vs_reference_grid.png"]
    assert "[mae by age band](mae_by_age_band.png)" in page and "(mae_by_age_band.png)" not in text
    assert "![MAE per run with 95% intervals, grouped by paper](forest_mae.png)" in page
    # The provenance of every run is in runs.md, linked from the README; the papers' own tables too.
    assert "[runs.md](runs.md)" in text and "## Every run" not in text
    runs_md = (tmp_path / "runs.md").read_text()
    assert runs_md.startswith(results.GENERATED) and "| `larson18` | thumbs |" in runs_md
    assert (tmp_path / "iglovikov18" / "regions.md").is_file()
    # Every file written is said, the plots by folder.
    out = capsys.readouterr().out
    for path in (tmp_path / "README.md", tmp_path / "runs.md", tmp_path / "iglovikov18" / "regions.md",
                 tmp_path / here / "pairwise_mae_differences.csv", tmp_path / here / "README.md"):
        assert f"Wrote {path}" in out
    assert f"in {tmp_path / here}: forest_mae.png, mae_by_age_band.png, bland_altman_grid.png, " in out


def test_the_readme_keeps_the_best_run_of_each_paper_and_each_experiments_page_has_every_run(tmp_path):
    """results/README.md stays short as runs accumulate: per experiment one row per paper (its best
    run) and a link to the experiment's page, results/comparison/<experiment>/README.md, which has
    every run's full row; nothing the README leaves out is lost."""
    fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200])             # MAE 10
    fake_run(tmp_path, "larson18", "thumbs_nosex", [100, 100, 60, 200])       # MAE 5: larson18's best
    fake_run(tmp_path, "rsna17_winner", "thumbs", [110, 120, 60, 200])        # MAE 2.5: the best run
    fake_run(tmp_path, "rsna17_winner", "thumbs_nosex", [130, 140, 60, 200])  # MAE 12.5
    fake_run(tmp_path, "larson18", "r512", [100, 120, 60, 190], fingerprint="5" * 16)
    fake_run(tmp_path, "larson18", "r512_scratch", [100, 100, 60, 190], fingerprint="5" * 16)
    results.regenerate(tmp_path, log=lambda *_: None)
    text = (tmp_path / "README.md").read_text()
    parts = {part.split("\n", 1)[0]: part for part in text.split("\n### ")[1:]}
    experiments = {"ffff": ("folder-rsna-thumbs100-ffffffffff-test", 4), "5555": ("folder-rsna-thumbs100-5555555555-test", 2)}
    for fingerprint, (folder, n) in experiments.items():
        part = next(v for k, v in parts.items() if f"(`{fingerprint}" in k)
        rows = [line for line in part.splitlines() if line.startswith("| `")]
        papers = [row.split("`")[1].split(" / ")[0] for row in rows]
        assert len(papers) == len(set(papers))  # at most one row per paper
        assert f"**[all {n} runs](comparison/{folder}/README.md)**" in part
        page = (tmp_path / "comparison" / folder / "README.md").read_text()
        assert sum(line.startswith("| `") for line in page.splitlines()) == n  # every run, in full
    thumbs = next(v for k, v in parts.items() if "(`ffff" in k)
    assert [row.split(" | ")[0] for row in thumbs.splitlines() if row.startswith("| `")] == [
        "| `rsna17_winner / thumbs` (best of 2)", "| `larson18 / thumbs_nosex` (best of 2)"]
    assert "thumbs_nosex` (best of 2) | **5.00 [4.00, 6.00]** | 4 | 100 | random | float32 | 10.0 min | +2.50 [" in thumbs
    assert "| `larson18 / thumbs` |" not in text and "| `rsna17_winner / thumbs_nosex` |" not in text
    page = (tmp_path / "comparison" / experiments["ffff"][0] / "README.md").read_text()
    for run in ("larson18 / thumbs", "larson18 / thumbs_nosex", "rsna17_winner / thumbs", "rsna17_winner / thumbs_nosex"):
        assert f"| `{run}` | regression | 100 |" in page


def test_compare_regenerates_the_papers_own_tables_the_registry_hands_in(tmp_path, monkeypatch):
    """common/ imports nothing from reproductions/: the region table comes in as an argument."""
    from reproductions import registry
    from reproductions.iglovikov18 import regions
    assert regions.regenerate in registry.tables()
    fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200])
    calls = []

    def table(results_dir, log):
        calls.append(results_dir)
        log(f"Wrote {results_dir / 'mine.md'}")
        return [results_dir / "mine.md"]
    said = []
    written = results.regenerate(tmp_path, log=said.append, tables=(table,))
    assert calls == [tmp_path]
    page = tmp_path / "comparison" / "folder-rsna-thumbs100-ffffffffff-test" / "README.md"
    assert written == [page, tmp_path / "README.md", tmp_path / "runs.md", tmp_path / "mine.md"]  # one run: no CSV
    assert said[-1] == f"Wrote {tmp_path / 'mine.md'}" and f"Wrote {tmp_path / 'runs.md'} (every run's provenance)." in said


def test_forest_plot_groups_runs_by_paper_sorted_by_mae_with_the_no_learning_reference(tmp_path, monkeypatch):
    """One row per run with its MAE and 95% interval; papers in blocks (best paper first), each in its
    own colour, runs by MAE within a block; the no-learning reference as a dashed vertical line."""
    fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200])            # MAE 10
    fake_run(tmp_path, "larson18", "thumbs_nosex", [100, 100, 60, 200])      # MAE 5
    fake_run(tmp_path, "rsna17_winner", "thumbs", [110, 120, 60, 200])       # MAE 2.5: its paper's block first
    fake_run(tmp_path, "rsna17_winner", "thumbs_nosex", [130, 140, 60, 200])  # MAE 12.5
    fake_run(tmp_path, "rsna17_second", "thumbs", [104, 124, 64, 204])       # MAE 4
    (key, members), = compare.experiments(loaded(tmp_path)).items()
    rows = compare.forest_rows(members)
    assert [(r["label"], r["mae"], r["ci_low"], r["ci_high"]) for r in rows] == [
        ("rsna17_winner / thumbs", 2.5, 1.5, 3.5), ("rsna17_winner / thumbs_nosex", 12.5, 11.5, 13.5),
        ("rsna17_second / thumbs", 4.0, 3.0, 5.0),
        ("larson18 / thumbs_nosex", 5.0, 4.0, 6.0), ("larson18 / thumbs", 10.0, 9.0, 11.0)]
    colours = compare.paper_colours(loaded(tmp_path))
    assert sorted(colours) == ["larson18", "rsna17_second", "rsna17_winner"] and len(set(colours.values())) == 3

    drawn = {}
    real_savefig = compare.io.atomic_savefig

    def keep(fig, path, **kwargs):
        real_savefig(fig, path, **kwargs)
        if path.name != "forest_mae.png":
            return
        (ax,) = fig.axes
        ticks = sorted(zip(ax.get_yticks(), ax.get_yticklabels()), key=lambda t: -t[0])  # top row first
        drawn[path.name] = {
            "labels": [t.get_text() for _, t in ticks], "label_colours": [t.get_color() for _, t in ticks],
            "dashed": [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"]}
    monkeypatch.setattr(compare.io, "atomic_savefig", keep)
    path = compare.plot_forest(key, members, tmp_path / "plots", reference={"n": 4, "pooled": 31.0, "per_sex": 30.5},
                               colours=colours)
    assert path == tmp_path / "plots" / "forest_mae.png" and path.stat().st_size > 0
    assert drawn["forest_mae.png"]["labels"] == [r["label"] for r in rows]
    assert drawn["forest_mae.png"]["label_colours"] == [colours[r["paper"]] for r in rows]
    assert drawn["forest_mae.png"]["dashed"] == [30.5]
    compare.plot_forest(key, members, tmp_path / "plots", reference=None)  # reference unknown: no line
    assert drawn["forest_mae.png"]["dashed"] == []

    monkeypatch.setattr(compare, "mean_predictor", lambda key, data_dir=None, trained_on=None: {"n": 4, "pooled": 31.0, "per_sex": 29.0})
    compare.plot_all(loaded(tmp_path), tmp_path, log=lambda *_: None)  # plot_all draws it with the experiment's reference
    assert drawn["forest_mae.png"]["dashed"] == [29.0]
    assert (tmp_path / "comparison" / compare.slug(key) / "forest_mae.png").is_file()


def test_mean_predictor_reads_the_labels_of_the_built_dataset_and_refuses_other_content(tiny_phantoms, data_dir):
    from common import pipeline
    key = (tiny_phantoms.name, tiny_phantoms.fingerprint(), "test")
    ref = compare.mean_predictor(key, data_dir)

    def labels(split):
        rows = [(float(e["boneage_months"]), int(e["male"])) for e in pipeline.read_split(tiny_phantoms, split)]
        return np.array([a for a, _ in rows]), np.array([m for _, m in rows])
    train, train_male = labels("train")
    test, test_male = labels("test")
    per_sex = np.where(test_male == 1, train[train_male == 1].mean(), train[train_male == 0].mean())
    assert ref["n"] == 16
    assert ref["pooled"] == pytest.approx(np.abs(test - train.mean()).mean())
    assert ref["per_sex"] == pytest.approx(np.abs(test - per_sex).mean())
    assert compare.mean_predictor((tiny_phantoms.name, "0" * 64, "test"), data_dir) is None   # other content
    assert compare.mean_predictor(("folder/never-built", "0" * 64, "test"), data_dir) is None


def test_compare_refuses_a_results_folder_that_does_not_exist_and_creates_nothing(tmp_path, capsys):
    from reproductions.__main__ import main
    missing = tmp_path / "nonexistent"
    assert main(["compare", "--results", str(missing)]) == 2
    assert not missing.exists()
    err = capsys.readouterr().err.strip()
    assert err == (f"error: results folder {missing} does not exist; expected the folder of run records "
                   f"(<paper>/<run>/run.json), default {results.RESULTS_DIR}")


def test_an_ablation_whose_runs_trained_unequal_epochs_says_so(tmp_path):
    a = fake_run(tmp_path, "larson18", "thumbs", [110, 120, 60, 200])
    fake_run(tmp_path, "larson18", "thumbs_nosex", [120, 130, 70, 210])
    record = json.loads((a / "run.json").read_text())
    record.update(epochs_done=7, stopped_by_budget="45 min")
    (a / "run.json").write_text(json.dumps(record))
    members = [(r, "test") for r in loaded(tmp_path)]
    ablation = {"question": "sex?", "factor": "sex", "a": ("larson18", "thumbs"), "b": ("larson18", "thumbs_nosex"),
                "commands": ["x"]}
    text = compare.ablation_table(tmp_path, members, [ablation])
    assert "caveat: unequal training, A 7 of 14 epochs (stopped by its 45 min budget), B 14 of 14 |" in text
    record.update(epochs_done=14)
    (a / "run.json").write_text(json.dumps(record))
    assert "unequal" not in compare.ablation_table(tmp_path, [(r, "test") for r in loaded(tmp_path)], [ablation])


def test_an_ablation_whose_runs_trained_on_different_data_says_so(tmp_path):
    """One experiment holds every run derived from its dataset: a pair trained on two registrations of it
    differs in more than its factor."""
    def derived(run_dir, fingerprint):  # trained on canvases derived from one source dataset
        record = json.loads((run_dir / "run.json").read_text())
        record["dataset"]["fingerprint"] = fingerprint
        record["evaluations"]["test"].update(source_dataset="folder/rsna-512", source_fingerprint="5" * 16)
        (run_dir / "run.json").write_text(json.dumps(record))

    a = fake_run(tmp_path, "larson18", "thumbs", [110, 120, 60, 200])
    b = fake_run(tmp_path, "larson18", "thumbs_nosex", [120, 130, 70, 210])
    ablation = {"question": "sex?", "factor": "sex", "a": ("larson18", "thumbs"), "b": ("larson18", "thumbs_nosex"),
                "commands": ["x"]}
    derived(a, "c" * 64), derived(b, "c" * 64)
    members = compare.experiments(loaded(tmp_path))[("folder/rsna-512", "5" * 16, "test")]
    assert "different data" not in compare.ablation_table(tmp_path, members, [ablation])
    fingerprint_b = "c" * 64
    derived(a, "e" * 64)
    members = compare.experiments(loaded(tmp_path))[("folder/rsna-512", "5" * 16, "test")]
    text = compare.ablation_table(tmp_path, members, [ablation])
    assert f"caveat: trained on different data, A `eeeeeeeeee`, B `{fingerprint_b[:10]}` |" in text, text


def test_the_same_network_on_other_data_is_paired_on_the_test_images_both_hold(tmp_path):
    """rsna-512 (A) against the thumbnails (B): 12 shared ids of B's 14; a pair sharing too few is said."""
    truth = [100.0, 120.0, 60.0, 200.0] * 3
    fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200] * 3 + [50, 50], truth=truth + [30, 40])
    r512 = fake_run(tmp_path, "larson18", "r512", [100, 118, 62, 200] * 3, truth=truth, fingerprint="5" * 16)
    record = json.loads((r512 / "run.json").read_text())
    record["dataset"]["name"] = "folder/rsna-512"
    (r512 / "run.json").write_text(json.dumps(record))
    runs = loaded(tmp_path)
    ablations = [{"question": "resolution?", "factor": "512 px (A) vs thumbnails (B)", "across_data": True,
                  "a": ("larson18", "r512"), "b": ("larson18", "thumbs"), "commands": ["x"]},
                 {"question": "winner resolution?", "factor": "512 px (A) vs thumbnails (B)", "across_data": True,
                  "a": ("rsna17_winner", "r512"),
                  "b": ("rsna17_winner", "thumbs"), "commands": ["run it"]}]
    members = compare.experiments(runs)[("folder/rsna-512", "5" * 16, "test")]
    text = compare.across_data_table(tmp_path, members, runs, ablations[:1])
    # A's errors 0, 2, 2, 0 against B's 0, 20, 20, 0 on the 12 shared images: A - B = 1 - 10 = -9.
    assert ("| resolution? | 512 px (A) vs thumbnails (B); B tested on folder/rsna-thumbs100, paired on the 12 test images both "
            "hold (MAE A 1.00, B 10.00) | `larson18 / r512` | `larson18 / thumbs` | **-9.00**") in text
    assert "caveat" not in text
    with_caveat = dict(ablations[0], caveat="A started from a retrain of B's recipe")
    assert "; caveat: A started from a retrain of B's recipe | — |" in compare.across_data_table(
        tmp_path, members, runs, [with_caveat])  # the pair's caveat is printed here as in ablation_rows
    full = compare.sections(runs, {}, tmp_path, ablations=ablations, n_boot=50, plots_linked=False)
    assert "paired on the same test images (a network against itself on other data" in full and "| resolution? |" in full
    assert "winner resolution?" not in full  # its A run is in no experiment here
    few = fake_run(tmp_path, "rsna17_winner", "r512", [1, 2], truth=[1.0, 2.0], fingerprint="5" * 16)
    fake_run(tmp_path, "rsna17_winner", "thumbs", [1, 2], truth=[1.0, 2.0])
    record = json.loads((few / "run.json").read_text())
    record["dataset"]["name"] = "folder/rsna-512"
    (few / "run.json").write_text(json.dumps(record))
    runs = loaded(tmp_path)
    members = [m for m in compare.experiments(runs)[("folder/rsna-512", "5" * 16, "test")] if m[0]["paper"] == "rsna17_winner"]
    assert "not paired: rsna17_winner / r512 and rsna17_winner / thumbs share 2 test images" in \
        compare.across_data_table(tmp_path, members, runs, ablations[1:])


def test_each_run_is_paired_with_the_best_and_every_pair_goes_to_a_csv(tmp_path):
    for i, variant in enumerate(("a", "b", "c", "d")):
        fake_run(tmp_path, "larson18", variant, [100 + 5 * i, 120, 60, 200])
    members = [(r, "test") for r in loaded(tmp_path)]
    csv = tmp_path / "pairs.csv"
    versus = compare.versus_best(tmp_path, members, n_boot=50, csv_path=csv)
    assert sorted(versus) == ["larson18 / b", "larson18 / c", "larson18 / d"]  # each run vs the best, a
    assert versus["larson18 / d"]["difference"] == pytest.approx(-3.75)  # A (the best) minus B
    table = compare.comparison_table(members, {}, versus)
    assert len(table.splitlines()) == 2 + 4  # one row per run, the pairs in it
    assert "| +3.75 [" in table
    pairs = pd.read_csv(csv)
    assert len(pairs) == 6 and set(pairs.columns) >= {"a", "b", "difference", "ci_low", "ci_high", "p_value", "verdict"}
    assert pairs.loc[(pairs["a"] == "larson18 / b") & (pairs["b"] == "larson18 / d"), "difference"].item() == -2.5
    assert compare.versus_best(tmp_path, members[:1], n_boot=50) == {}  # one run: nothing to pair


def test_a_run_is_paired_with_the_run_it_started_from(tmp_path):
    truth = [100.0, 120.0, 60.0, 200.0] * 3
    source = fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200] * 3 + [50, 50], truth=truth + [30, 40])
    r512 = fake_run(tmp_path, "larson18", "r512", [100, 118, 62, 200] * 3, truth=truth, fingerprint="5" * 16)
    record = json.loads((r512 / "run.json").read_text())
    record["init_from"] = {"run": str(source)}
    (r512 / "run.json").write_text(json.dumps(record))
    runs = loaded(tmp_path)
    members = compare.experiments(runs)[("folder/rsna-thumbs100", "5" * 16, "test")]
    text = compare.started_from_table(tmp_path, members, n_boot=50)
    assert (f"| {compare.STARTED_FROM} | A against the run it started from (`--init-from`, B: folder/rsna-thumbs100, "
            f"14 epochs), paired on the 12 test images both hold (MAE A 1.00, B 10.00) | `larson18 / r512` | "
            f"`larson18/{source.name}` | **-9.00**") in text
    record["init_from"] = {"run": "/somewhere/else"}  # outside the results folder: not paired, not an error
    (r512 / "run.json").write_text(json.dumps(record))
    members = compare.experiments(loaded(tmp_path))[("folder/rsna-thumbs100", "5" * 16, "test")]
    assert compare.started_from_table(tmp_path, members, n_boot=50) is None


def evaluated_elsewhere(run_dir, preds, truth, dataset="folder/sample", fingerprint="s" * 16, uncertainty=None):
    """Adds to a fake run an evaluation on another dataset (`evaluate --eval-data`), as common/train writes it."""
    key = f"test-on-{dataset.replace('/', '-')}"
    (run_dir / key).mkdir()
    truth, preds = np.asarray(truth, float), np.asarray(preds, float)
    pd.DataFrame({"id": [str(2000 + i) for i in range(len(truth))], "boneage_true": truth, "boneage_pred": preds,
                  "male": [0, 1] * (len(truth) // 2)}).to_csv(run_dir / key / "predictions.csv", index=False)
    record = json.loads((run_dir / "run.json").read_text())
    mae = float(np.abs(preds - truth).mean())
    ev = dict(record["evaluations"]["test"], split="test", dataset=dataset, dataset_fingerprint=fingerprint,
              images=len(truth), trained_on={"dataset": record["dataset"]["name"],
                                             "fingerprint": record["dataset"]["fingerprint"]})
    ev["estimates"] = {"regression": {**ev["estimates"]["regression"], "mae": metric(mae, mae - 1, mae + 1)}}
    if uncertainty:
        ev["extra_metrics"] = {"uncertainty": uncertainty}
    record["evaluations"][key] = ev
    (run_dir / "run.json").write_text(json.dumps(record))


def conformal(images, coverage, widths, rho, **more):
    """An evaluation's "uncertainty" section as reproductions/attention_mtl writes it (conformal.report)."""
    return {"images": images, "in_sample": False, "spearman_scale_vs_abs_error": rho, "mean_scale_months": 9.6,
            "calibration": {"dataset": "folder/rsna-512", "split": "validation", "images": 102},
            "levels": {name: {"nominal": int(name) / 100, "coverage": c, "mean_width_months": w}
                       for name, c, w in zip(("80", "90", "95"), coverage, widths)}, **more}


def with_uncertainty(run_dir, uncertainty):
    record = json.loads((run_dir / "run.json").read_text())
    record["evaluations"]["test"]["extra_metrics"] = {"uncertainty": uncertainty, "attention": {"images": 4}}
    (run_dir / "run.json").write_text(json.dumps(record))


def test_pairs_not_run_are_one_line_in_the_readme_and_their_commands_are_in_runs_md(tmp_path):
    """rsna-512: A and B of the pooling pair are measured, the GRU pair waits for B; A was also evaluated
    on another dataset (--eval-data), where B was not: neither pair is listed there, both runs having
    predictions in rsna-512 (pooling) or the GRU pair waiting there already."""
    r512 = fake_run(tmp_path, "attention_mtl", "r512", [110, 120, 60, 200], fingerprint="5" * 16)
    fake_run(tmp_path, "attention_mtl", "r512_gap", [120, 130, 70, 210], fingerprint="5" * 16)
    evaluated_elsewhere(r512, [100, 130], [100.0, 120.0])
    fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200])  # an experiment without any pair
    ablations = [{"question": "attention or pooling?", "factor": "pooling", "a": ("attention_mtl", "r512"),
                  "b": ("attention_mtl", "r512_gap"), "commands": ["make gap A", "make gap B"]},
                 {"question": "attention or a GRU?", "factor": "pooling", "a": ("attention_mtl", "r512"),
                  "b": ("attention_mtl", "r512_gru"), "commands": ["make gru A", "make gru B --long-flag"]},
                 {"question": "sex?", "factor": "sex", "a": ("larson18", "r512"), "b": ("larson18", "r512_nosex"),
                  "commands": ["nobody ran either"]}]
    said = []
    results.regenerate(tmp_path, log=said.append, ablations=ablations)
    pages = {page.read_text().split("\n")[2][2:]: page.read_text() for page in (tmp_path / "comparison").glob("*/README.md")}
    here, there = (next(v for k, v in pages.items() if k.startswith(name))
                   for name in ("folder/rsna-thumbs100 (`5555", "folder/sample"))
    assert "| attention or pooling? | pooling | `attention_mtl / r512` | `attention_mtl / r512_gap` | **-10.00**" in here
    line = ("Not run yet: 1 ablation pair(s) (`attention_mtl / r512` vs `r512_gru`); the commands that make them: "
            "[runs.md](../../runs.md#ablation-pairs-not-run-yet).")
    assert line in here.splitlines()
    text = "\n".join(pages.values())
    assert text.count("Not run yet") == 1 and "not run yet:" not in text  # not in the --eval-data experiment
    assert "1 ablation pair (1 more not run yet)" in (tmp_path / "README.md").read_text()
    assert "make gru" not in text and "attention or a GRU?" not in text and "sex?" not in text
    assert "| question |" not in there and "r512_gap" not in there  # B has no predictions there
    # The commands are in runs.md, once per pair, with the experiment the pair waits in.
    runs_md = (tmp_path / "runs.md").read_text()
    assert "\n## Ablation pairs not run yet\n" in runs_md
    assert ("| attention or a GRU? | `attention_mtl / r512` | `attention_mtl / r512_gru` | `attention_mtl / r512_gru` "
            "| folder/rsna-thumbs100 (`5555555555`), test | `make gru A`; `make gru B --long-flag` |") in runs_md.splitlines()
    assert runs_md.count("make gru A") == 1 and "make gap" not in runs_md and "nobody ran" not in runs_md
    assert f"Wrote {tmp_path / 'runs.md'} (every run's provenance; the commands of the 1 ablation pair(s) not run yet)." in said
    # Nothing pending: runs.md has no such section.
    results.regenerate(tmp_path, log=said.append, ablations=ablations[:1])
    assert "Ablation pairs not run yet" not in (tmp_path / "runs.md").read_text()
    assert not any("Not run yet" in page.read_text() for page in (tmp_path / "comparison").glob("*/README.md"))
    assert "not run yet" not in (tmp_path / "README.md").read_text()


def test_runs_with_conformal_intervals_get_a_coverage_table_in_their_experiment(tmp_path):
    r512 = fake_run(tmp_path, "attention_mtl", "r512", [110, 120, 60, 200], fingerprint="5" * 16)
    gap = fake_run(tmp_path, "attention_mtl", "r512_gap", [120, 130, 70, 210], fingerprint="5" * 16)
    fake_run(tmp_path, "lite0_regressor", "r512", [100, 100, 80, 200], fingerprint="5" * 16)  # no intervals
    fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200])  # an experiment without any
    with_uncertainty(r512, conformal(4, (0.787, 0.865, 0.933), (35.33, 45.04, 54.59), 0.1576))
    with_uncertainty(gap, conformal(4, (0.75, 1.0, 1.0), (30.0, 45.0, 50.0), float("nan"), constant_scale=True,
                                    in_sample=True))
    evaluated_elsewhere(r512, [100, 130], [100.0, 120.0],
                        uncertainty=conformal(2, (0.5, 1.0, 1.0), (40.1, 51.1, 62.0), None))
    runs = loaded(tmp_path)
    members = compare.experiments(runs)[("folder/rsna-thumbs100", "5" * 16, "test")]
    assert compare.uncertainty_table(members).splitlines() == [
        "| conformal intervals: run | n | coverage at 80 / 90 / 95 % | mean width at 80 / 90 / 95 % (months) "
        "| Spearman(scale, abs error) | calibrated on (images) |",
        "|---|---|---|---|---|---|",
        "| `attention_mtl / r512` | 4 | 78.7 / 86.5 / 93.3 | 35.3 / 45.0 / 54.6 | 0.158 | folder/rsna-512 validation (102) |",
        "| `attention_mtl / r512_gap` | 4 | 75.0 / 100.0 / 100.0 | 30.0 / 45.0 / 50.0 | — (one scale for all: a point head) "
        "| folder/rsna-512 validation (102): the test split itself, coverage in-sample |"]
    assert compare.uncertainty_table([m for m in members if m[0]["paper"] == "lite0_regressor"]) is None
    text = compare.sections(runs, {}, tmp_path, n_boot=50, plots_linked=False)
    assert text.count("| conformal intervals: run |") == 2  # rsna-512 and the --eval-data one, not the thumbnails
    elsewhere = text.split("### folder/sample")[1]
    assert "| `attention_mtl / r512` | 2 | 50.0 / 100.0 / 100.0 | 40.1 / 51.1 / 62.0 | — |" in elsewhere
    thumbs = text.split("### folder/rsna-thumbs100 (`ffff")[1].split("### ")[0]
    assert "conformal" not in thumbs


def test_a_pair_across_data_that_is_also_the_run_a_started_from_is_one_row(tmp_path):
    truth = [100.0, 120.0, 60.0, 200.0] * 3
    source = fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200] * 3 + [50, 50], truth=truth + [30, 40])
    r512 = fake_run(tmp_path, "larson18", "r512", [100, 118, 62, 200] * 3, truth=truth, fingerprint="5" * 16)
    record = json.loads((r512 / "run.json").read_text())
    record.update(init_from={"run": str(source)}, dataset={"name": "folder/rsna-512", "fingerprint": "5" * 16})
    (r512 / "run.json").write_text(json.dumps(record))
    ablation = {"question": "resolution?", "factor": "512 px (A) vs thumbnails (B)", "across_data": True,
                "a": ("larson18", "r512"), "b": ("larson18", "thumbs"), "commands": ["x"]}
    text = compare.sections(loaded(tmp_path), {}, tmp_path, ablations=[ablation], n_boot=50, plots_linked=False)
    assert "(MAE A 1.00, B 10.00); B is also the run A started from (`--init-from`) | `larson18 / r512` |" in text
    assert compare.STARTED_FROM not in text  # the same pair, the same numbers: said once
    text = compare.sections(loaded(tmp_path), {}, tmp_path, n_boot=50, plots_linked=False)
    assert compare.STARTED_FROM in text  # without the across-data pair, the started-from row stays


def test_the_no_learning_reference_comes_from_the_records_and_runs_trained_on_other_data_disagreeing_give_none(
        tmp_path, monkeypatch):
    """evaluate keeps each evaluation's no-learning reference in the record; compare reads it there and
    opens no dataset; records that disagree (trained on different data) give no reference."""
    a = fake_run(tmp_path, "larson18", "thumbs", [100, 100, 80, 200])
    b = fake_run(tmp_path, "rsna17_winner", "thumbs", [110, 120, 60, 200])
    ref = {"n": 4, "pooled": 31.0, "per_sex": 30.5}
    for run in (a, b):
        record = json.loads((run / "run.json").read_text())
        record["evaluations"]["test"]["no_learning"] = ref
        (run / "run.json").write_text(json.dumps(record))
    monkeypatch.setattr(compare, "mean_predictor", lambda *a, **k: pytest.fail("compare reopened the dataset"))
    (key, members), = compare.experiments(loaded(tmp_path)).items()
    assert compare.experiment_reference(key, members) == ref
    record = json.loads((b / "run.json").read_text())
    record["evaluations"]["test"]["no_learning"] = {**ref, "per_sex": 29.0}
    (b / "run.json").write_text(json.dumps(record))
    (key, members), = compare.experiments(loaded(tmp_path)).items()
    assert compare.experiment_reference(key, members) is None
    monkeypatch.setattr(compare, "mean_predictor", lambda key, data_dir=None, trained_on=None: {"n": 4, "pooled": 1.0,
                                                                                               "per_sex": 2.0})
    for run in (a, b):  # records evaluated before the entry existed: computed from the dataset, as before
        record = json.loads((run / "run.json").read_text())
        del record["evaluations"]["test"]["no_learning"]
        (run / "run.json").write_text(json.dumps(record))
    (key, members), = compare.experiments(loaded(tmp_path)).items()
    assert compare.experiment_reference(key, members) == {"n": 4, "pooled": 1.0, "per_sex": 2.0}


def test_experiment_plots_give_each_method_its_own_colour_and_draw_cells_as_a_single_runs_plots(tmp_path,
                                                                                                monkeypatch):
    """mae_by_age_band.png once showed two methods in blue, two in orange; the grids' cells are drawn by
    evaluation's drawers, the code of a single run's plots, not a second copy of it."""
    from common import evaluation
    for i in range(12):
        fake_run(tmp_path, "larson18", f"v{i:02d}", [100 + i, 120, 60, 200])
    (key, members), = compare.experiments(loaded(tmp_path)).items()
    figures, drawn = {}, []
    real_savefig = compare.io.atomic_savefig
    monkeypatch.setattr(compare.io, "atomic_savefig",
                        lambda fig, path, **kw: (figures.__setitem__(Path(path).name, fig), real_savefig(fig, path, **kw)))
    for name in ("draw_bland_altman", "draw_predicted_vs_reference"):
        real = getattr(evaluation, name)
        monkeypatch.setattr(evaluation, name, lambda ax, d, real=real, name=name, **kw: (drawn.append((name, kw["colour"])),
                                                                                       real(ax, d, **kw)))
    paths = compare.plot_experiment(tmp_path, key, members, tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["bland_altman_grid.png", "mae_by_age_band.png",
                                             "predicted_vs_reference_grid.png"]
    bars = figures["mae_by_age_band.png"].axes[0].containers
    colours = [tuple(np.round(c.patches[0].get_facecolor(), 3)) for c in bars]
    assert len(colours) == 12 and len(set(colours)) == 12
    expected = compare.method_colours([compare.label(run) for run, _ in members])
    assert sorted(drawn) == sorted((name, c) for name in ("draw_bland_altman", "draw_predicted_vs_reference")
                                   for c in expected.values())
    assert len(set(compare.method_colours([f"m{i}" for i in range(25)]).values())) == 25


def test_the_no_learning_reference_of_a_sex_absent_from_training_is_the_pooled_mean(monkeypatch):
    from common import reference
    labels = {"train": (np.array([100.0, 120.0]), np.array([0, 0])), "test": (np.array([90.0, 150.0]), np.array([0, 1]))}
    monkeypatch.setattr(reference, "_labels", lambda handle, split: labels[split])
    ref = reference.no_learning(object(), "test")
    assert ref == {"n": 2, "pooled": pytest.approx((20 + 40) / 2), "per_sex": pytest.approx((20 + 40) / 2)}
