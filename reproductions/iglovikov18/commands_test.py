"""Which runs the chain's `predict` and `register` use (issue 15, item 8): the ones their flags name,
as `train --stage` makes them, never the newest; the predictions file names each run and its commit.

The networks are stubs (each age run answers the months its run record says), so that these tests
are about which runs answer, take seconds, and build no data.
"""
import json
import os

import cv2
import numpy as np
import pandas as pd
import pytest

from common import train as common_train
from reproductions.iglovikov18 import chain as ig_chain
from reproductions.iglovikov18 import commands
from reproductions.iglovikov18 import config as ig_config
from reproductions.iglovikov18.__main__ import main


class StubNetwork:
    """Stands in for a trained network: a hand everywhere, fixed key points, a fixed age."""

    def __init__(self, config, months):
        self.config, self.months = config, months

    def predict_on_batch(self, inputs):
        n = len(inputs["image"])
        if self.config.stage == "segment":
            size = int(self.config.data.image_size)
            return {"logits": np.full((n, size, size, 1), 5.0, np.float32)}
        if self.config.stage == "keypoints":
            return {"keypoints": np.tile(np.array([[0.5, 0.1], [0.9, 0.5], [0.5, 0.8]], np.float32), (n, 1, 1))}
        return {"age": np.full((n, 1), self.months, np.float32)}


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    path = tmp_path / "results"
    monkeypatch.setattr(common_train, "RESULTS_DIR", path)
    monkeypatch.delenv("BONEAGE_RSNA_DIR", raising=False)

    def load_run(run_dir, stage_names, log=print):  # the real checks, a stub network
        config, _ = ig_chain.check_run(run_dir, stage_names)
        return config, StubNetwork(config, json.loads((run_dir / "run.json").read_text()).get("months"))
    monkeypatch.setattr(ig_chain, "load_run", load_run)
    return path


@pytest.fixture
def no_data_built(monkeypatch):
    """Choosing runs needs dataset names only: any attempt to open or build a dataset fails the test."""
    from common import data

    def resolve(*args, **kwargs):
        raise AssertionError(f"data.resolve{args} was called")
    monkeypatch.setattr(data, "resolve", resolve)


def fake_run(run_dir, variant, commit, months=None, mtime=None):
    """A run directory as `train` leaves it: config, (empty) best weights, a run record."""
    config = ig_config.get_config(variant)
    config.variant = variant  # as common.train.make_config records it
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
    (run_dir / "checkpoints" / "best.weights.h5").write_bytes(b"")
    (run_dir / "run.json").write_text(json.dumps({"status": "trained", "commit": commit, "months": months,
                                                  "dataset": {"name": "phantoms/small"}}))
    if mtime:
        os.utime(run_dir / "checkpoints" / "best.weights.h5", (mtime, mtime))
    return run_dir


def named(base, stage, region=None, data="phantoms/small"):
    return commands.stage_run_dir(data, base, stage, region)


def predict(tmp_path, *flags):
    image = tmp_path / "1377.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (60, 44), dtype=np.uint8))
    csv = tmp_path / "pred.csv"
    status = main(["predict", str(image), "--sex", "F", "--output-csv", str(csv), *flags])
    return status, pd.read_csv(csv) if status == 0 else None


def one_error_line(capsys, *fragments):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for fragment in fragments:
        assert fragment in err, err


def test_predict_uses_the_runs_its_flags_name_and_records_them(tmp_path, results_dir, no_data_built, capsys):
    segment = fake_run(named("small", "segment"), "small-segment", "5e9a0b1")
    keypoints = fake_run(named("small", "keypoints"), "small-keypoints", "c0ffee")
    hand = fake_run(named("small", "regress", "hand"), "small-regress-hand", "aaa", months=50.0)
    carpal = fake_run(named("small", "regress", "carpal"), "small-regress-carpal", "bbb", months=70.0)
    # Newer runs of the same stages on other data or another variant are never picked for being newest.
    fake_run(named("small", "segment", data="phantoms/default"), "small-segment", "new", mtime=2e9)
    newest = fake_run(named("small", "regress", "hand", data="phantoms/default"), "small-regress-hand", "new",
                      months=200.0, mtime=2e9)
    fake_run(named("thumbs", "regress", "hand", data="phantoms/small"), "thumbs-regress-hand", "new",
             months=300.0, mtime=2e9)

    status, table = predict(tmp_path, "--small", "--data", "phantoms/small")
    assert status == 0
    row = table.iloc[0]
    assert row["boneage_months"] == 60.0     # the mean of the two age runs the flags name (50, 70)
    assert [row["boneage_months_small-regress-hand"], row["boneage_months_small-regress-carpal"]] == [50.0, 70.0]
    expected = {"segment": (segment, "5e9a0b1"), "keypoints": (keypoints, "c0ffee"),
                "small-regress-hand": (hand, "aaa"), "small-regress-carpal": (carpal, "bbb")}
    for name, (run, commit) in expected.items():
        assert (row[f"run_dir_{name}"], row[f"run_commit_{name}"]) == (str(run), commit), name
    out = capsys.readouterr().out
    assert f"Predicting with the segment run {segment} (trained on phantoms/small, commit 5e9a0b1)" in out
    assert "Not trained, so not in the estimate: phantoms-small_small-classify-hand" in out

    # Explicit run flags still choose, each on its own.
    status, table = predict(tmp_path, "--small", "--data", "phantoms/small", "--age-runs", str(newest))
    assert status == 0 and table.iloc[0]["boneage_months"] == 200.0
    assert table.iloc[0]["run_dir_segment"] == str(segment) and table.iloc[0]["run_commit_small-regress-hand"] == "new"


def test_predict_names_the_run_that_has_no_weights(tmp_path, results_dir, no_data_built, capsys):
    assert predict(tmp_path, "--small", "--data", "phantoms/small")[0] == 2
    one_error_line(capsys, f"no trained iglovikov18 segment model in {named('small', 'segment')} (no checkpoints/",
                   "or pass --segment-run DIR of a trained run")
    fake_run(named("small", "segment"), "small-segment", "1")
    fake_run(named("small", "keypoints"), "small-keypoints", "1")
    fake_run(named("small", "regress", "hand", data="phantoms/default"), "small-regress-hand", "1", months=1.0)
    assert predict(tmp_path, "--small", "--data", "phantoms/small")[0] == 2
    one_error_line(capsys, f"no trained iglovikov18 age network in {results_dir / 'iglovikov18'} for phantoms/small: "
                   "none of phantoms-small_small-regress-hand_", "--age-data SPEC or --age-runs DIR")
    # Radiographs without key points: the age networks trained on the folder `register` writes.
    assert predict(tmp_path, "--variant", "thumbs", "--data", "folder/rsna-thumbs100", "--segment-run",
                   str(named("small", "segment")), "--keypoints-run", str(named("small", "keypoints")))[0] == 2
    one_error_line(capsys, "for folder/rsna-thumbs100-registered-thumbs-83px: none of "
                   "folder-rsna-thumbs100-registered-thumbs-83px_thumbs-regress-hand_83px")
    assert predict(tmp_path, "--variant", "huge")[0] == 2
    one_error_line(capsys, "--variant 'huge': unknown base variant; expected one of ['small', 'thumbs', 'r512', 'r512scratch']")


def test_register_uses_the_chain_its_flags_name(tmp_path, results_dir, no_data_built, capsys):
    """Checked before the dataset to register is opened or built."""
    assert main(["register", "--variant", "thumbs", "--data", "phantoms/small"]) == 2
    one_error_line(capsys, f"no trained iglovikov18 segment model in {named('thumbs', 'segment')}")
    fake_run(named("thumbs", "segment"), "thumbs-segment", "1")
    assert main(["register", "--variant", "thumbs", "--data", "phantoms/small"]) == 2
    one_error_line(capsys, f"no trained iglovikov18 keypoints model in {named('thumbs', 'keypoints')}",
                   "--keypoints-run DIR")


def test_register_opens_the_data_with_the_split_column_given(tmp_path, results_dir, monkeypatch):
    """`--split-column source_split`: ../shared/data/rsna-sample's official test images are registered as
    its test split, so the age networks can be evaluated on them (`evaluate --eval-data`)."""
    from common import data
    from reproductions.iglovikov18 import stages
    segment = fake_run(named("thumbs", "segment"), "thumbs-segment", "1")
    keypoints = fake_run(named("thumbs", "keypoints"), "thumbs-keypoints", "2")
    opened = []

    class Handle:
        name = "folder/official-by-source_split"

        def describe(self):
            return self.name

    def resolve(spec, **kwargs):
        opened.append((spec, kwargs.get("split_column")))
        return Handle()
    monkeypatch.setattr(data, "resolve", resolve)
    monkeypatch.setattr(stages, "register_dataset", lambda chain, handle, config, out, **_: out)
    flags = ["--variant", "thumbs", "--segment-run", str(segment), "--keypoints-run", str(keypoints),
             "--out", str(tmp_path / "registered")]
    assert main(["register", "--data", "folder:official", "--split-column", "source_split", *flags]) == 0
    assert {column for spec, column in opened if spec == "folder:official"} == {"source_split"}
    opened.clear()
    assert main(["register", "--data", "folder:official", *flags]) == 0
    assert {column for spec, column in opened if spec == "folder:official"} == {None}


def test_the_random_start_arm_refuses_a_source_run(tmp_path, results_dir, no_data_built, capsys, monkeypatch):
    """r512scratch is r512 from random weights by its name: common.train refuses --init-from before it
    builds any data, so its runs cannot hold a transferred start (r512, the other arm, takes one)."""
    monkeypatch.setattr(commands, "age_needs_registration", lambda options, log=print: None)  # opens the data
    source = fake_run(named("thumbs", "classify", "hand"), "thumbs-classify-hand", "1")
    args = ["train", "--stage", "classify", "--region", "hand", "--data", "phantoms/small", "--init-from", str(source)]
    assert main([*args, "--variant", "r512scratch"]) == 2
    one_error_line(capsys, "--variant r512scratch-classify-hand starts from random weights by its name")
    # It names r512's age networks only: the chain's other commands refuse it, naming what to run.
    for command in (["train", "--stage", "segment"], ["register"], ["predict", "x.png", "--sex", "F"], ["chain"]):
        assert main([*command, "--variant", "r512scratch", "--data", "phantoms/small"]) == 2, command
        one_error_line(capsys, "--variant r512scratch: r512's age networks from random weights, nothing else")
