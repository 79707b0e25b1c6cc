"""Run directories and records: legacy records load, foreign or newer ones are refused by file name."""
import json
import os
import re
from pathlib import Path

import pytest

from common import io, runs
from common.errors import UsageError

REPO_RESULTS = Path(__file__).resolve().parent.parent / "results"


def make_run(root, record=None, weights=(), config=None) -> runs.RunDir:
    root.mkdir(parents=True, exist_ok=True)
    if record is not None:
        (root / "run.json").write_text(record if isinstance(record, str) else json.dumps(record))
    if config is not None:
        (root / "config.json").write_text(json.dumps(config))
    for name in weights:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return runs.RunDir(root)


def test_a_legacy_record_without_schema_loads_as_it_is(tmp_path):
    legacy = {"paper": "larson18", "variant": "small", "status": "evaluated", "evaluations": {}}
    assert make_run(tmp_path / "run", legacy).record() == legacy


def test_the_committed_records_all_load():
    found = runs.find_runs(REPO_RESULTS)
    assert len(found) >= 20  # the results committed with the kit (legacy records: no "schema")
    for run in found:
        assert isinstance(run.record(), dict)


def test_a_record_of_a_newer_schema_is_refused_naming_the_file(tmp_path):
    run = make_run(tmp_path / "run", {"schema": runs.SCHEMA + 1, "paper": "larson18"})
    with pytest.raises(runs.RecordError, match=rf"{re.escape(str(run.record_path))}: a run record of schema {runs.SCHEMA + 1}, "
                                               "written by a newer version"):
        run.record()


@pytest.mark.parametrize("text, what", [
    ('{"paper": "larson18", "status": "tra', "not valid JSON"),
    ("[1, 2]", "expected a JSON object, found list"),
    ('{"schema": "one"}', "its \"schema\" is 'one'"),
    ('{"schema": true}', "its \"schema\" is True"),
])
def test_a_corrupt_or_foreign_record_is_refused_naming_the_file(tmp_path, text, what):
    run = make_run(tmp_path / "run", text)
    with pytest.raises(runs.RecordError) as e:
        run.record()
    assert str(e.value).startswith(f"{run.record_path}: ") and what in str(e.value)
    assert isinstance(e.value, UsageError)  # every command prints it as one `error:` line


def test_a_record_without_a_key_its_reader_needs_is_refused(tmp_path):
    run = make_run(tmp_path / "run", {"paper": "larson18"})
    assert run.record(required=("paper",)) == {"paper": "larson18"}
    with pytest.raises(runs.RecordError, match=rf"{re.escape(str(run.record_path))}: the run record has no 'evaluations'"):
        run.record(required=("paper", "evaluations"))


def test_a_missing_record_is_empty_unless_it_is_needed(tmp_path):
    run = runs.RunDir(tmp_path / "run")
    assert run.record() == {} and not run.has_record()
    with pytest.raises(runs.RecordError, match=f"{re.escape(str(run.path))}: no run.json"):
        run.record(missing_ok=False)


def test_write_record_stamps_the_schema_atomically_and_keeps_the_keys(tmp_path, monkeypatch):
    run = runs.RunDir(tmp_path / "run")
    record = {"paper": "larson18", "evaluations": {"test": {"images": 3}}}
    written = run.write_record(record)
    assert "schema" not in record  # the caller's dict is left alone
    assert json.loads(run.record_path.read_text()) == written == {**record, "schema": runs.SCHEMA}
    assert run.record() == written
    # A write that dies after its temporary file was written (here: at the rename) leaves the
    # old record whole, and no temporary file behind.
    def die(src, dst):
        assert json.loads(Path(src).read_text())["paper"] == "other"
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(io.os, "replace", die)
    with pytest.raises(OSError):
        run.write_record({"paper": "other"})
    assert run.record() == written
    assert sorted(p.name for p in run.path.iterdir()) == ["run.json"]


def test_write_record_goes_through_atomic_write_json(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(io, "atomic_write_json", lambda path, obj: calls.append((path, obj)))
    runs.RunDir(tmp_path).write_record({"paper": "x"})
    assert calls == [(tmp_path / "run.json", {"paper": "x", "schema": runs.SCHEMA})]


def test_a_legacy_record_rewritten_gets_the_schema_and_nothing_else_changes(tmp_path):
    legacy = {"paper": "larson18", "status": "trained", "weights": "none"}
    run = make_run(tmp_path / "run", legacy)
    record = run.record()
    record["status"] = "evaluated"
    run.write_record(record)
    assert json.loads(run.record_path.read_text()) == {**legacy, "status": "evaluated", "schema": runs.SCHEMA}


def test_best_weights_is_best_else_last_else_none(tmp_path):
    assert runs.RunDir(tmp_path / "none").best_weights() is None
    assert make_run(tmp_path / "r1", weights=[runs.LAST]).best_weights() == tmp_path / "r1" / runs.LAST
    both = make_run(tmp_path / "r2", weights=[runs.LAST, runs.BEST])
    assert both.best_weights() == tmp_path / "r2" / "checkpoints" / "best.weights.h5"
    assert make_run(tmp_path / "r3", record={"status": "evaluated"}).best_weights() is None  # records only


def test_weights_files_include_one_level_of_sub_runs(tmp_path):
    run = make_run(tmp_path / "run", weights=[runs.LAST])
    make_run(tmp_path / "run" / "male", weights=[runs.BEST, runs.LAST])
    make_run(tmp_path / "run" / "female", weights=[runs.BEST])
    make_run(tmp_path / "run" / "female" / "deeper", weights=[runs.BEST])  # two levels down: not a sub-run
    assert run.weights_files() == [
        tmp_path / "run" / "female" / runs.BEST, tmp_path / "run" / "male" / runs.BEST,
        tmp_path / "run" / runs.LAST, tmp_path / "run" / "male" / runs.LAST]
    assert runs.RunDir(tmp_path / "missing").weights_files() == []


def test_config_reads_config_json(tmp_path):
    run = make_run(tmp_path / "run", config={"name": "larson18", "data": {"image_size": 72}})
    assert run.config().data.image_size == 72
    assert runs.RunDir(tmp_path / "other").config() is None
    (run.config_path).write_text("{")
    with pytest.raises(runs.RecordError, match=rf"{re.escape(str(run.config_path))}: not a run config: not valid JSON"):
        run.config()


def test_find_runs_lists_paper_run_records_in_path_order_without_sub_runs(tmp_path):
    make_run(tmp_path / "larson18" / "b", {"paper": "larson18"})
    make_run(tmp_path / "larson18" / "a", {"paper": "larson18"})
    make_run(tmp_path / "rsna17_second" / "c", {"paper": "rsna17_second"})
    make_run(tmp_path / "rsna17_second" / "c" / "female", {"paper": "rsna17_second"})  # a sub-run
    make_run(tmp_path / "larson18" / "no-record", weights=[runs.BEST])
    found = runs.find_runs(tmp_path)
    assert [r.path.relative_to(tmp_path).as_posix() for r in found] == [
        "larson18/a", "larson18/b", "rsna17_second/c"]
    assert runs.find_runs(tmp_path / "nothing") == []


def test_run_dir_is_path_like(tmp_path):
    run = runs.RunDir(tmp_path / "run")
    assert os.fspath(run) == str(tmp_path / "run") == str(run) and Path(run) == tmp_path / "run"
    assert run / "run.json" == tmp_path / "run" / "run.json" and run.name == "run"
    assert runs.RunDir(run) == run and len({run, runs.RunDir(str(tmp_path / "run"))}) == 1


def test_run_name():
    assert runs.run_name("phantoms/default", "small", 72) == "phantoms-default_small_72px"
    assert runs.run_name("phantoms-default", "small", 72) == "phantoms-default_small_72px"
