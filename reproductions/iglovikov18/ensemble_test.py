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
    assert record["evaluations"]["test"]["estimates"]["ensemble"]["mae"]["value"] == pytest.approx(5.0)
    assert pd.read_csv(out / "test" / "predictions.csv")["boneage_pred"].tolist() == [105.0, 125.0, 65.0, 195.0]
