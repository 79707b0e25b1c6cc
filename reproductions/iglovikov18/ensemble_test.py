"""`evaluate --stage ensemble` on hand-made member runs: which runs, and where the ensemble lands."""
import pandas as pd
import pytest

from common import results as common_results
from common import train as common_train
from common.runs import RunDir, run_name
from reproductions.iglovikov18 import ensemble, regions
from reproductions.iglovikov18.variants import Variant


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    path = tmp_path / "results"
    monkeypatch.setattr(common_results, "RESULTS_DIR", path)
    monkeypatch.setattr(common_train, "RESULTS_DIR", path)
    monkeypatch.setattr(regions, "regenerate", lambda *a, **k: None)
    return path


def member(results_dir, variant, months, data="phantoms/small", size=83):
    """An evaluated age run under its default name, predicting `months` for four test images."""
    run = results_dir / "iglovikov18" / run_name(data, variant.name, size)
    (run / "test").mkdir(parents=True)
    pd.DataFrame({"id": ["1", "2", "3", "4"], "boneage_true": [100.0, 120.0, 60.0, 190.0],
                  "boneage_pred": months, "male": [0, 1, 0, 1]}).to_csv(run / "test" / "predictions.csv", index=False)
    RunDir(run).write_record({"paper": "iglovikov18", "variant": variant.name, "status": "evaluated",
                              "dataset": {"name": data}, "image_size": size, "epochs": 3, "epochs_done": 3,
                              "wall_time_s": 1.0, "evaluations": {"test": {"dataset": data}}})
    return run


def test_the_default_members_are_the_age_networks_of_the_base_that_exist(results_dir):
    hand = member(results_dir, Variant("small", "regress", "hand"), [100.0] * 4)
    carpal = member(results_dir, Variant("small", "classify", "carpal"), [110.0] * 4)
    member(results_dir, Variant("thumbs", "regress", "hand"), [1.0] * 4)                 # another base
    member(results_dir, Variant("small", "regress", "hand"), [1.0] * 4, data="phantoms/default")  # other data
    assert ensemble.default_members(results_dir, "phantoms-small", "small", 83) == [hand, carpal]


def test_the_ensemble_is_recorded_as_the_bases_ensemble(results_dir):
    runs = [member(results_dir, Variant("small", "regress", "hand"), [100.0, 120.0, 60.0, 190.0]),
            member(results_dir, Variant("small", "classify", "hand"), [110.0, 130.0, 70.0, 200.0])]
    assert ensemble.main("small", ["--runs", *map(str, runs)], log=lambda *_: None) == 0
    out = results_dir / "iglovikov18" / "phantoms-small_small-ensemble_83px"
    record = RunDir(out).record(missing_ok=False)
    assert record["variant"] == "small-ensemble" and record["members"] == [str(r) for r in runs]
    assert record["members_initial_weights"] == "random"  # the members' records name no init_from or weights
    assert record["evaluations"]["test"]["estimates"]["ensemble"]["mae"]["value"] == pytest.approx(5.0)
    assert pd.read_csv(out / "test" / "predictions.csv")["boneage_pred"].tolist() == [105.0, 125.0, 65.0, 195.0]


def test_the_ensemble_of_an_evaluation_on_other_data_keeps_the_own_test_one(results_dir, monkeypatch):
    """`--eval-data`: the members' `evaluate --eval-data` folders (e.g. the official test images registered
    by the same chain) are averaged under the same key, beside the ensemble's own test evaluation."""
    from types import SimpleNamespace

    from common import data as data_lib
    key = "test-on-folder-official-registered"
    runs = [member(results_dir, Variant("small", "regress", "hand"), [100.0, 120.0, 60.0, 190.0]),
            member(results_dir, Variant("small", "classify", "hand"), [110.0, 130.0, 70.0, 200.0])]
    for run, months in zip(runs, ([90.0, 100.0], [70.0, 100.0])):
        (run / key).mkdir()
        pd.DataFrame({"id": ["a", "b"], "boneage_true": [100.0, 100.0], "boneage_pred": months,
                      "male": [0, 1]}).to_csv(run / key / "predictions.csv", index=False)
        record = RunDir(run).record()
        record["evaluations"][key] = {"split": "test", "dataset": "folder/official-registered",
                                      "source_dataset": "folder/official", "source_fingerprint": "f" * 64,
                                      "trained_on": {"dataset": "phantoms/small"}}
        RunDir(run).write_record(record)
    monkeypatch.setattr(data_lib, "resolve", lambda spec, **_: SimpleNamespace(name=spec.replace("folder:", "folder/")))
    quiet = {"log": lambda *_: None}
    assert ensemble.main("small", ["--runs", *map(str, runs)], **quiet) == 0
    assert ensemble.main("small", ["--runs", *map(str, runs), "--eval-data", "folder:official-registered"], **quiet) == 0
    out = results_dir / "iglovikov18" / "phantoms-small_small-ensemble_83px"
    evaluations = RunDir(out).record(missing_ok=False)["evaluations"]
    assert set(evaluations) == {"test", key}
    assert evaluations[key]["estimates"]["ensemble"]["mae"]["value"] == pytest.approx(10.0)  # |80-100|, |100-100|
    assert evaluations[key]["source_dataset"] == "folder/official" and evaluations[key]["split"] == "test"
    assert evaluations["test"]["estimates"]["ensemble"]["mae"]["value"] == pytest.approx(5.0)
    assert pd.read_csv(out / key / "predictions.csv")["boneage_pred"].tolist() == [80.0, 100.0]
