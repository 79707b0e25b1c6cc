"""The command line's answers to user mistakes and where its commands write (issue 15, items 7 and 8).

Every mistake gets one line naming the input and what was expected, with exit status 2 and no
traceback; `evaluate` and `predict` find the run their flags name before building any data;
only runs inside the results folder touch the results tables. A stub task stands in for a
paper and the expensive steps are replaced, so that each case takes well under a second.
"""
import dataclasses
import json
import os
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest

from common import results
from common import train
from common.config import Config
from common.runner import SingleRun
from common.task import DataSpec, Task


def _get_config(variant=""):
    return Config({"seed": 0, "data": {"image_size": 32},
                   "train": {"epochs": 3, "batch_size": 4, "optimizer": {"name": "adam", "learning_rate": 1e-3}}})


def _preprocess(config, training):
    from common import preprocessing
    return lambda e: preprocessing.to_unit_float(preprocessing.letterbox(e, 32))


class NothingToLoad(SingleRun):
    """A run whose model is the task's `predict` alone: nothing is loaded."""

    def load_trained(self, task, config, run_dir, model=None, log=print):
        return None, "best.weights.h5"


TASK = Task(
    paper="tiny", citation="a test task", get_config=_get_config, build_model=None,
    data=DataSpec(preprocess=_preprocess,
                  to_model_io=lambda config: lambda b: ({"image": b["image"]}, b["boneage_months"])),
    loss=None, metrics=None,
    # A model that answers 100 months: these tests are about which run answers, not what it says.
    predict=lambda model, inputs, config: {"months": np.full(len(inputs["image"]), 100.0)},
    runner=NothingToLoad())


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    path = tmp_path / "results"
    path.mkdir()
    monkeypatch.setattr(train, "RESULTS_DIR", path)
    monkeypatch.delenv("BONEAGE_RSNA_DIR", raising=False)
    return path


@pytest.fixture
def no_data_built(monkeypatch):
    """Any attempt to open or build a dataset fails the test."""
    from common import data

    def resolve(*args, **kwargs):
        raise AssertionError(f"data.resolve{args} was called")
    monkeypatch.setattr(data, "resolve", resolve)


def fake_run(run_dir, commit="0123abcd", dirty=False):
    """A run directory with (empty) best weights and a run record."""
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "best.weights.h5").write_bytes(b"")
    (run_dir / "run.json").write_text(json.dumps({"status": "trained", "commit": commit, "dirty": dirty,
                                                  "dataset": {"name": "phantoms/small"}}))
    return run_dir


def image(tmp_path):
    path = tmp_path / "1377.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (40, 30), dtype=np.uint8))
    return path


def one_error_line(capsys, *fragments):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for fragment in fragments:
        assert fragment in err, err
    return err


# ----------------------------------------------------------------------------- item 7: messages
def test_a_missing_sex_csv_is_one_line_naming_the_file(tmp_path, results_dir, capsys):
    run = fake_run(results_dir / "tiny" / "run")
    missing = tmp_path / "sexes.csv"
    assert train.main(TASK, ["predict", str(image(tmp_path)), "--sex-csv", str(missing), "--out", str(run)]) == 2
    one_error_line(capsys, f"--sex-csv {missing}: no such file; expected a CSV with columns id (or file) and sex")
    missing.write_text("")
    assert train.main(TASK, ["predict", str(image(tmp_path)), "--sex-csv", str(missing), "--out", str(run)]) == 2
    one_error_line(capsys, f"--sex-csv {missing}: cannot be read as a CSV")


@pytest.mark.parametrize("assignment, message", [
    ("train.epoch=5", "--set train.epoch=5: config key 'train.epoch' does not exist; did you mean 'train.epochs'?"),
    ("train.epochs", "--set train.epochs: expected KEY=VALUE, e.g. --set train.epochs=10"),
    ("train.epochs=ten", "--set train.epochs=ten: config key 'train.epochs' takes an int (it is 3); "
                         "received 'ten', a str"),
], ids=["unknown key", "no equals sign", "wrong type"])
def test_a_bad_set_is_one_line_naming_key_value_and_type(assignment, message, results_dir, no_data_built, capsys):
    for command in ("train", "evaluate"):
        assert train.main(TASK, [command, "--set", assignment]) == 2
        assert one_error_line(capsys) == f"error: {message}"


@pytest.mark.parametrize("flag, value", [("--batch-size", "0"), ("--epochs", "-1"), ("--image-size", "0"),
                                         ("--limit", "0"), ("--epochs", "many")])
def test_counts_and_sizes_below_one_are_refused_by_argparse(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(TASK, ["train", flag, value])
    assert exit_info.value.code == 2
    # One line, like every other user error (issue 15 item 7), not argparse's usage dump before it.
    assert capsys.readouterr().err.splitlines() == [
        f"python -m reproductions.{TASK.paper} train: error: argument {flag}: expected a whole number of at least 1, "
        f"received '{value}' (see python -m reproductions.{TASK.paper} train --help)"]


def test_an_unknown_flag_or_no_command_is_one_line_too(capsys):
    for argv, said in ((["train", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
                       ([], "the following arguments are required: command")):
        with pytest.raises(SystemExit) as exit_info:
            train.main(TASK, argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and said in err[0] and "--help)" in err[0], err


def test_flags_become_typed_options_and_a_papers_own_flags_its_extras():
    """common/cli.py alone parses argv: the library gets a RunOptions (--small is the variant "small",
    --set the overrides in order; the flags a paper's runner adds go to extras)."""
    from common import cli
    from common.options import RunOptions

    class WithSex(NothingToLoad):
        def add_flags(self, command, parser):
            if command == "train":
                parser.add_argument("--sex", default="both", choices=("female", "male", "both"))
    task = dataclasses.replace(TASK, runner=WithSex())
    command, options = cli.parse(task, ["train", "--small", "--set", "a=1", "--set", "b=2", "--epochs", "3",
                                        "--sex", "male", "--no-eval"])
    assert command == "train"
    assert options == RunOptions(variant="small", overrides=("a=1", "b=2"), epochs=3, no_eval=True,
                                 extras={"sex": "male"})
    command, options = cli.parse(task, ["predict", "a.png", "b", "--sex", "F", "--variant", "small"])
    assert options == RunOptions(variant="small", files=("a.png", "b"), sex="F")
    assert options.extra("sex", "both") == "both"


def test_an_unknown_variant_is_status_2(results_dir, capsys):
    assert train.main(TASK, ["evaluate", "--variant", "huge"]) == 2
    one_error_line(capsys, "unknown variant 'huge'; known: ['small']")


# ----------------------------------------------------------------------------- item 8: side effects
def test_dataset_name_is_the_name_resolve_gives_without_building(tiny_phantoms, data_dir, make_folder, monkeypatch,
                                                                 no_data_built):
    monkeypatch.delenv("BONEAGE_RSNA_DIR", raising=False)
    assert train.dataset_name("phantoms/tiny") == tiny_phantoms.name == "phantoms/tiny"
    assert train.dataset_name(None) == train.dataset_name("phantoms") == "phantoms/default"
    assert train.dataset_name("rsna:/somewhere") == train.dataset_name("rsna") == "rsna/default"
    monkeypatch.setenv("BONEAGE_RSNA_DIR", "/somewhere")
    assert train.dataset_name(None) == "rsna/default"
    assert train.dataset_name(f"folder:{make_folder([{'id': 1, 'boneage': 10, 'male': 1}], name='thumbs')}") == \
        "folder/thumbs"
    assert train.dataset_name("folder/thumbs") == "folder/thumbs"
    # The names run records keep (evaluate --out falls back to them) are names resolve opens as they are.
    assert train.dataset_name("rsna/default") == "rsna/default" and train.dataset_name("rsna/max256") == "rsna/max256"


def test_evaluate_without_a_trained_run_says_so_before_building_data(results_dir, no_data_built, capsys):
    assert train.main(TASK, ["evaluate", "--data", "phantoms/small", "--small"]) == 2
    run = results_dir / "tiny" / "phantoms-small_small_32px"
    one_error_line(capsys, f"no trained tiny model in {run} (no checkpoints/best.weights.h5 or last.weights.h5",
                   "--out RUN_DIR")
    # A committed run has its record but never its weights.
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": "evaluated"}))
    assert train.main(TASK, ["evaluate", "--data", "phantoms/small", "--small"]) == 2
    one_error_line(capsys, "its run.json says 'evaluated', but the weights are not there: they are never committed")


def test_evaluate_out_without_data_opens_the_rsna_dataset_its_record_names(tmp_path, results_dir, capsys):
    """`evaluate --out RUN` of a run trained on RSNA: its record's "rsna/default" is read as the built
    dataset of that name (never built: the name says nothing of where the download is)."""
    run = fake_run(results_dir / "tiny" / "run")
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "dataset": {"name": "rsna/default"}}))
    empty = tmp_path / "datasets"
    assert train.main(TASK, ["evaluate", "--out", str(run), "--data-dir", str(empty)]) == 2
    one_error_line(capsys, f"No rsna dataset 'rsna/default' built in {empty}; build it first with --data rsna:PATH")
    assert not empty.exists()


def test_weights_of_sub_runs_count_as_trained(tmp_path):
    """rsna17_second trains one model per sex in <run>/<sex>/."""
    assert train.trained_weights(tmp_path) == []
    fake_run(tmp_path / "female")
    assert train.trained_weights(tmp_path) == [tmp_path / "female" / "checkpoints" / "best.weights.h5"]


@pytest.fixture
def tables(monkeypatch):
    """Replaces the table regeneration with a recorder of the folders it was asked to write."""
    calls = []
    monkeypatch.setattr(results, "regenerate", lambda results_dir=None, **kwargs: calls.append(Path(results_dir)))
    return calls


def test_train_and_evaluate_leave_the_tables_alone_and_say_where_the_run_landed(tmp_path, results_dir, tables,
                                                                               monkeypatch, capsys):
    """train and evaluate write only the run directory; `python -m reproductions compare` regenerates
    the tables. Each says where the run landed and that command, inside the results folder or not."""
    monkeypatch.setattr(train, "evaluate", lambda task, options, **kwargs: {})
    handle = SimpleNamespace(name="phantoms/small", splits={"train": 8, "validation": 4, "test": 4})
    class TrainedAtOnce(NothingToLoad):
        def train(self, task, options, log=print):
            return Path(options.out), None, handle, None
    task = dataclasses.replace(TASK, runner=TrainedAtOnce())
    elsewhere, inside = fake_run(tmp_path / "elsewhere"), fake_run(results_dir / "tiny" / "run")
    for command in ("train", "evaluate"):
        assert train.main(task, [command, "--out", str(elsewhere)]) == 0
        assert tables == []
        out = capsys.readouterr().out
        assert f"The run is in {elsewhere}, outside {results_dir}: the results tables do not show it" in out, out
        assert "`python -m reproductions compare`" in out
        assert train.main(task, [command, "--out", str(inside)]) == 0
        assert tables == []
        out = capsys.readouterr().out
        assert (f"The run is in {inside}. The results tables were not changed; regenerate them with "
                "`python -m reproductions compare`.") in out, out


def test_the_table_is_unchanged_after_evaluate_and_compare_regenerates_it(tmp_path, results_dir, monkeypatch):
    """results/README.md is the `compare` command's alone (common.results.regenerate, which it calls)."""
    import shutil

    from common import results_test
    monkeypatch.setattr(train, "evaluate", lambda task, options, **kwargs: {})
    results_test.setup_tree(tmp_path)
    (results_dir / "README.md").write_text(results.GENERATED + "\nNo evaluated runs yet.\n")
    before = (results_dir / "README.md").read_text()
    run = results_test.fake_run(tmp_path / "made")  # an evaluated larson18 run, moved into the results folder
    shutil.move(str(run.parent), str(results_dir / "larson18"))
    fake_run(results_dir / "tiny" / "run")
    assert train.main(TASK, ["evaluate", "--out", str(results_dir / "tiny" / "run")]) == 0
    assert (results_dir / "README.md").read_text() == before
    results.regenerate(results_dir, tmp_path / "reproductions", log=lambda *_: None)
    assert "| `larson18 / paper` |" in (results_dir / "README.md").read_text()
    assert "| `larson18` | paper |" in (results_dir / "runs.md").read_text()  # every run's provenance


def test_the_fine_tuning_warning_names_the_variants_set_for_random_weights():
    def get_config(variant=""):
        return Config({"model": {"pretrained": "imagenet" if variant in ("", "nosex") else "none"}})
    task = dataclasses.replace(TASK, get_config=get_config, variants=("nosex", "small", "scratch", "thumbs"))
    assert train.random_init_variants(task) == ["scratch", "small", "thumbs"]
    assert train.random_init_variants(dataclasses.replace(task, variants=("nosex",))) == []


def test_python_m_common_results_points_to_the_compare_command_and_writes_nothing(capsys):
    import runpy
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("common.results", run_name="__main__")
    assert exit_.value.code == 2
    assert "`python -m reproductions compare --no-plots` (tables only)" in capsys.readouterr().err


def _predict(tmp_path, *flags):
    csv = tmp_path / "pred.csv"
    status = train.main(TASK, ["predict", str(image(tmp_path)), "--sex", "F", "--output-csv", str(csv), *flags])
    return status, pd.read_csv(csv) if status == 0 else None


def test_predict_uses_the_run_its_flags_name_and_says_which(tmp_path, results_dir, capsys):
    small = fake_run(results_dir / "tiny" / "phantoms-small_small_32px", commit="5ma11", dirty=True)
    paper = fake_run(results_dir / "tiny" / "phantoms-default_paper_32px", commit="9a9e7")
    newest = fake_run(results_dir / "tiny" / "folder-other_paper_32px", commit="ffff")
    os.utime(newest / "checkpoints" / "best.weights.h5", (2e9, 2e9))  # the newest run is never picked by age
    status, table = _predict(tmp_path, "--data", "phantoms/small", "--small")
    assert status == 0
    assert table[["run_dir", "run_commit"]].values.tolist() == [[str(small), "5ma11+dirty"]]
    assert table["boneage_months"].tolist() == [100.0]
    assert f"Predicting with the run {small} (trained on phantoms/small, commit 5ma11+dirty)" in capsys.readouterr().out
    status, table = _predict(tmp_path)  # no flags: the paper's variant on the default data, as train makes it
    assert status == 0 and table["run_dir"].tolist() == [str(paper)] and table["run_commit"].tolist() == ["9a9e7"]
    status, table = _predict(tmp_path, "--out", str(newest))
    assert status == 0 and table["run_dir"].tolist() == [str(newest)]


def test_predict_names_the_run_directory_that_has_no_weights(tmp_path, results_dir, no_data_built, capsys):
    fake_run(results_dir / "tiny" / "phantoms-default_paper_32px")
    status, _ = _predict(tmp_path, "--data", "phantoms/small")
    assert status == 2
    one_error_line(capsys, f"no trained tiny model in {results_dir / 'tiny' / 'phantoms-small_paper_32px'}")
    status, _ = _predict(tmp_path, "--out", str(tmp_path / "nowhere"))
    assert status == 2
    one_error_line(capsys, f"no trained tiny model in {tmp_path / 'nowhere'}")
