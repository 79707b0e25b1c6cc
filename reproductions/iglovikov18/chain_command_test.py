"""`chain`: the whole chain in one command, through the per-stage commands' library calls (issue 16).

The library calls (commands.train_stage, train_age, evaluate_age, register_data,
ensemble.evaluate_ensemble) are replaced by recorders that leave what the real ones leave (a run
directory with weights and a record, a registered folder's marker, an ensemble's metrics), so these
tests are about which steps run, in which order, from which runs, and which are skipped; no data
is built and nothing is trained.
"""
import json

import pytest

from common import data as data_lib
from common import results as common_results
from common import train as common_train
from common.runs import RunDir
from reproductions.iglovikov18 import commands, ensemble, stages
from reproductions.iglovikov18 import config as ig_config
from reproductions.iglovikov18.__main__ import main
from reproductions.iglovikov18.variants import Variant

AGE_ORDER = [f"{stage} {region}" for region in ("hand", "carpal", "metacarpal") for stage in ("regress", "classify")]
FULL = ["train segment", "train keypoints", "register folder/rsna-512", *(f"train {a}" for a in AGE_ORDER), "ensemble"]
AGE_DATA = "folder/rsna-512-registered-r512-400px"


def write_run(run_dir, variant, status="trained", evaluations=()):
    """A run directory as `train` leaves it: config, (empty) best weights, a run record."""
    config = ig_config.get_config(variant)
    config.variant = variant
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
    (run_dir / "checkpoints" / "best.weights.h5").write_bytes(b"")
    for key in evaluations:
        (run_dir / key).mkdir(exist_ok=True)
        (run_dir / key / "predictions.csv").write_text("id,boneage_true,boneage_pred,male\n")
    RunDir(run_dir).write_record({"status": status, "dataset": {"name": str(run_dir.name).split("_")[0]},
                                  "evaluations": {k: {} for k in evaluations}})
    return run_dir


@pytest.fixture
def chain(tmp_path, monkeypatch):
    """The folders, and the library calls recorded: chain.calls is [(what, variant or data, details)]."""
    results = tmp_path / "results"
    monkeypatch.setattr(common_train, "RESULTS_DIR", results)
    monkeypatch.setattr(common_results, "RESULTS_DIR", results)
    monkeypatch.setenv("BONEAGE_DATA_DIR", str(tmp_path / "datasets"))
    monkeypatch.delenv("BONEAGE_RSNA_DIR", raising=False)

    def resolve(*args, **kwargs):
        raise AssertionError(f"data.resolve{args} was called")
    monkeypatch.setattr(data_lib, "resolve", resolve)
    calls = []

    def train_stage(stage, base, options, log=print):
        calls.append(("train", Variant(base, stage).name, options.init_from, options.precision))
        return write_run(commands.stage_run_dir(common_train.dataset_name(options.data), base, stage),
                         Variant(base, stage).name)

    def train_age(stage, region, base, options, log=print):
        variant = Variant(base, stage, region).name
        calls.append(("train", variant, options.init_from, options.precision))
        return write_run(commands.stage_run_dir(options.data, base, stage, region), variant, "evaluated", ["test"])

    def evaluate_age(stage, region, base, options, log=print):
        calls.append(("evaluate", Variant(base, stage, region).name, options.eval_data, options.split_column))
        run = commands.stage_run_dir(options.data, base, stage, region)
        key = common_train.evaluation_key("test", options.eval_data or options.data, options.data)
        (run / key).mkdir()  # as common.train.evaluate: its own folder and record entry, the test one untouched
        (run / key / "predictions.csv").write_text("id,boneage_true,boneage_pred,male\n")
        record = RunDir(run).record()
        RunDir(run).write_record({**record, "evaluations": {**record["evaluations"], key: {}}})
        return run

    def register_data(spec, base, *, segment_run, keypoints_run, split_column=None, out=None, **_):
        calls.append(("register", spec.split("/")[-1], split_column, None))
        out.mkdir(parents=True, exist_ok=True)
        (out / stages.REGISTERED_MARKER).write_text(json.dumps({"segment_run": str(segment_run),
                                                                "keypoints_run": str(keypoints_run)}))
        return out

    def evaluate_ensemble(base, runs=None, eval_data=None, **_):
        calls.append(("ensemble", tuple(Variant.parse(r.name.split("_")[1]).name for r in runs), eval_data, None))
        key = common_train.evaluation_key("test", eval_data, AGE_DATA) if eval_data else "test"
        out = ensemble.ensemble_dir(AGE_DATA, base, 400)
        (out / key).mkdir(parents=True, exist_ok=True)
        (out / key / "metrics.json").write_text("{}")
        RunDir(out).write_record({"status": "evaluated", "members": [str(r) for r in runs]})
        return out

    monkeypatch.setattr(commands, "train_stage", train_stage)
    monkeypatch.setattr(commands, "train_age", train_age)
    monkeypatch.setattr(commands, "evaluate_age", evaluate_age)
    monkeypatch.setattr(commands, "register_data", register_data)
    monkeypatch.setattr(ensemble, "evaluate_ensemble", evaluate_ensemble)
    for name in ("rsna-512", "rsna-thumbs100", "official"):
        (tmp_path / name).mkdir()

    class Chain:
        def __init__(self):
            self.calls, self.tmp = calls, tmp_path

        def run(self, *flags):
            return main(["chain", "--variant", "r512", "--data", f"folder:{tmp_path / 'rsna-512'}", *flags])

        def thumbs_sources(self, leave_out=()):
            """The thumbnail chain's runs (the --init-from sources), but those of `leave_out`."""
            for v in (Variant("thumbs", "segment"), Variant("thumbs", "keypoints"), *Variant.age_networks("thumbs")):
                data = "folder/rsna-thumbs100" + ("-registered-thumbs-83px" if v.is_age else "")
                if v.name not in leave_out:
                    write_run(commands.stage_run_dir(data, "thumbs", v.stage, v.region), v.name)
    return Chain()


INIT = ("--init-from-variant", "thumbs")


def titles(out):
    return [line.split(". ", 1)[1].split(" (")[0] for line in out.splitlines() if line[:3].strip().rstrip(".").isdigit()]


def test_the_dry_run_lists_the_steps_in_order_with_their_sources(chain, capsys):
    chain.thumbs_sources()
    assert chain.run("--precision", "mixed_bfloat16", "--init-from-data", f"folder:{chain.tmp / 'rsna-thumbs100'}",
                     *INIT, "--dry-run") == 0
    assert chain.calls == []
    out = capsys.readouterr().out
    assert titles(out) == FULL
    R = common_train.RESULTS_DIR / "iglovikov18"
    assert (f"python -m reproductions.iglovikov18 train --stage segment --variant r512 --data folder:{chain.tmp}/rsna-512 "
            f"--precision mixed_bfloat16 --init-from {R}/folder-rsna-thumbs100_thumbs-segment_96px") in out
    assert (f"train --stage classify --region carpal --variant r512 --data {AGE_DATA} --precision mixed_bfloat16 "
            f"--init-from {R}/folder-rsna-thumbs100-registered-thumbs-83px_thumbs-classify-carpal_83px") in out
    assert f"register --variant r512 --data folder:{chain.tmp}/rsna-512 --segment-run {R}/folder-rsna-512_r512-segment" in out
    assert f"evaluate --stage ensemble --variant r512 --data {AGE_DATA}" in out
    assert "cannot" not in out and out.count("starts from ") == 8


def test_a_missing_source_run_is_one_error_line_before_anything_runs(chain, capsys):
    chain.thumbs_sources(leave_out=("thumbs-classify-carpal",))
    assert chain.run("--init-from-data", f"folder:{chain.tmp / 'rsna-thumbs100'}", *INIT) == 2
    assert chain.calls == []
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: 1 run(s) to start from"), err
    assert "thumbs-classify-carpal_83px: no config.json" in err and "nothing was run" in err


def test_a_rerun_of_a_complete_chain_runs_nothing_and_an_interrupted_one_resumes(chain, capsys):
    assert chain.run() == 0
    assert [f"{what} {name}" for what, name, *_ in chain.calls] == [
        "train r512-segment", "train r512-keypoints", "register rsna-512",
        *(f"train r512-{a.replace(' ', '-')}" for a in AGE_ORDER),
        "ensemble ('r512-regress-hand', 'r512-classify-hand', 'r512-regress-carpal', 'r512-classify-carpal', "
        "'r512-regress-metacarpal', 'r512-classify-metacarpal')"]
    assert all(init is None for what, _, init, _ in chain.calls if what == "train")
    out = capsys.readouterr().out
    assert out.count(": started at ") == 10 and out.count(" min (chain ") == 10

    del chain.calls[:]
    assert chain.run() == 0
    assert chain.calls == []
    out = capsys.readouterr().out
    assert out.count(": skipped, ") == 10 and "0 of 10 steps run, 10 skipped" in out

    # Interrupted during the last network: it alone trains again (train resumes it), then the ensemble.
    last = commands.stage_run_dir(AGE_DATA, "r512", "classify", "metacarpal")
    RunDir(last).write_record({**RunDir(last).record(), "status": "interrupted"})
    assert chain.run() == 0
    assert [(what, name) for what, name, *_ in chain.calls] == [("train", "r512-classify-metacarpal"),
                                                                 ("ensemble", chain.calls[-1][1])]


def test_regions_hand_trains_only_the_hand_pair(chain, capsys):
    assert chain.run("--regions", "hand", "--dry-run") == 0
    assert f"evaluate --stage ensemble --variant r512 --runs {common_train.RESULTS_DIR}" in capsys.readouterr().out
    assert chain.run("--regions", "hand") == 0
    assert [(what, name) for what, name, *_ in chain.calls] == [
        ("train", "r512-segment"), ("train", "r512-keypoints"), ("register", "rsna-512"),
        ("train", "r512-regress-hand"), ("train", "r512-classify-hand"),
        ("ensemble", ("r512-regress-hand", "r512-classify-hand"))]


def test_the_eval_data_steps_run_only_when_given(chain, capsys):
    assert chain.run() == 0
    assert not [c for c in chain.calls if c[0] == "evaluate" or c[2]]   # no evaluation on other data
    del chain.calls[:]
    official = "folder/official-by-source_split-registered-r512-400px"
    assert chain.run("--eval-data", f"folder:{chain.tmp / 'official'}", "--split-column", "source_split") == 0
    assert chain.calls == [("register", "official", "source_split", None),
                           *(("evaluate", f"r512-{a.replace(' ', '-')}", official, None) for a in AGE_ORDER),
                           ("ensemble", chain.calls[-1][1], official, None)]
    out = capsys.readouterr().out
    assert out.count(": skipped, ") == 10
    assert f"register --variant r512 --data folder:{chain.tmp}/official --split-column source_split" in out
    assert f"evaluate --stage regress --region hand --variant r512 --data {AGE_DATA} --eval-data {official}" in out
    del chain.calls[:]
    assert chain.run("--eval-data", f"folder:{chain.tmp / 'official'}", "--split-column", "source_split") == 0
    assert chain.calls == []                                              # all 18 steps complete


def test_init_stages_starts_only_those_networks_from_the_source(chain, capsys):
    """The thumbnail chain: the U-Net and key points from their phantom runs, the age networks from scratch."""
    for v in (Variant("r512", "segment"), Variant("r512", "keypoints")):
        write_run(commands.stage_run_dir("phantoms/small", "r512", v.stage), v.name)
    assert chain.run("--init-from-data", "phantoms/small", "--init-stages", "segment", "keypoints") == 0
    started = {name: init for what, name, init, _ in chain.calls if what == "train"}
    R = common_train.RESULTS_DIR / "iglovikov18"
    assert started["r512-segment"] == str(R / "phantoms-small_r512-segment_256px")
    assert started["r512-keypoints"] == str(R / "phantoms-small_r512-keypoints_256px")
    assert [started[f"r512-{a.replace(' ', '-')}"] for a in AGE_ORDER] == [None] * 6


def test_the_per_stage_commands_call_the_same_library_functions(chain):
    """`train --stage ...` parses its flags into RunOptions and calls what `chain` calls."""
    assert main(["train", "--stage", "segment", "--variant", "r512", "--data", f"folder:{chain.tmp / 'rsna-512'}",
                 "--precision", "mixed_bfloat16", "--init-from", "SRC"]) == 0
    assert main(["train", "--stage", "classify", "--region", "carpal", "--variant", "r512", "--data", AGE_DATA]) == 0
    assert main(["evaluate", "--stage", "classify", "--region", "carpal", "--variant", "r512", "--data", AGE_DATA,
                 "--eval-data", "folder/official-registered"]) == 0
    assert chain.calls == [("train", "r512-segment", "SRC", "mixed_bfloat16"),
                           ("train", "r512-classify-carpal", None, "auto"),
                           ("evaluate", "r512-classify-carpal", "folder/official-registered", None)]
