"""The shared training machinery, end to end on a tiny phantom set with a tiny task.

A small CNN regressing months stands in for a paper here, so that resume and evaluation are
tested in seconds; each reproduction's own smoke test runs its real model.
"""
import json
import signal

import pandas as pd
import pytest

from conftest import SUBPROCESS_TIMEOUT_S, requires_jax


def test_kill_and_resume_continues_from_the_saved_epoch(tiny_task, tmp_path):
    run, _ = tiny_task
    out = tmp_path / "run"
    args = ["train", "--data", "phantoms/tiny", "--out", str(out), "--epochs", "40", "--no-eval"]
    proc = run(*args, wait=False)
    # SIGKILL as soon as two epochs are logged: no handler runs, nothing is flushed on purpose.
    metrics = out / "metrics.csv"
    import time
    deadline = time.time() + SUBPROCESS_TIMEOUT_S
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().strip().splitlines()) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = pd.read_csv(metrics)["epoch"].max() + 1
    assert 2 <= done_before < 40
    result = run("train", "--data", "phantoms/tiny", "--out", str(out), "--epochs", str(done_before + 2), "--no-eval")
    assert result.returncode == 0, result.stdout + result.stderr
    log = pd.read_csv(metrics)
    # The resumed run logged only the epochs after the saved one: it did not start from zero.
    assert sorted(log["epoch"].unique()) == list(range(done_before + 2))
    assert f"Epoch {done_before + 1}/{done_before + 2}" in result.stdout
    assert "Epoch 1/" not in result.stdout
    record = json.loads((out / "run.json").read_text())
    assert record["epochs_done"] == done_before + 2 and record["status"] == "trained"
    # The training clock counts on across the resume (rows are kept per epoch: drop re-trained duplicates).
    clock = log.drop_duplicates("epoch", keep="last").set_index("epoch")
    assert (clock["epoch_seconds"] > 0).all() and clock["train_seconds"].is_monotonic_increasing
    assert clock["train_seconds"].iloc[-1] >= clock["epoch_seconds"].sum() - 1.0, clock


def test_a_training_budget_stops_after_the_epoch_that_would_overrun_it_and_is_recorded(tiny_task, tmp_path):
    run, _ = tiny_task
    out = tmp_path / "run"
    # A budget far below one epoch: the first epoch runs, then one more would overrun.
    result = run("train", "--data", "phantoms/tiny", "--out", str(out), "--epochs", "30", "--no-eval",
                 "--max-minutes", "0.0001")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Stopping after epoch 1" in result.stdout and "0.0001-min budget" in result.stdout, result.stdout
    record = json.loads((out / "run.json").read_text())
    assert record["epochs_done"] == 1 and record["stopped_by_budget"] == "0.0001 min" and record["epochs"] == 30
    assert record["config"]["train"]["max_minutes"] == 0.0001
    # Rerunning a run that spent its budget says so instead of training on.
    result = run("train", "--data", "phantoms/tiny", "--out", str(out), "--epochs", "30", "--no-eval",
                 "--max-minutes", "0.0001")
    assert result.returncode == 2 and "its whole 0.0001-min budget" in result.stderr, result.stdout + result.stderr
    result = run("train", "--data", "phantoms/tiny", "--out", str(out), "--max-minutes", "0")
    assert result.returncode == 2 and "expected a number above 0" in result.stderr


def test_train_then_evaluate_writes_every_file_and_record(tiny_task, tmp_path):
    run, _ = tiny_task
    out = tmp_path / "run"
    result = run("train", "--data", "phantoms/tiny", "--out", str(out), "--epochs", "12", "--split", "validation")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("predictions.csv", "metrics.json", "metrics.md", "predicted_vs_reference.png", "bland_altman.png",
                 "error_by_age.png", "learning_curves.png"):
        assert (out / "validation" / name).stat().st_size > 0, name
    for name in ("config.json", "run.json", "metrics.csv", "checkpoints/best.weights.h5"):
        assert (out / name).exists(), name
    record = json.loads((out / "run.json").read_text())
    for key in ("dataset", "image_size", "epochs", "precision", "hardware", "versions", "commit", "wall_time_s", "seed"):
        assert key in record, key
    assert record["dataset"]["fingerprint"] and record["precision"] == "float32"
    assert record["evaluations"]["validation"]["images"] == 16
    predictions = pd.read_csv(out / "validation" / "predictions.csv")
    assert len(predictions) == 16 and predictions["boneage_pred"].notna().all()


def test_evaluate_on_another_dataset_keeps_the_runs_own_evaluation_and_names_the_split_column(tiny_task, tmp_path,
                                                                                             tiny_phantoms, monkeypatch):
    """evaluate --eval-data: e.g. a run trained on rsna-512, tested on the official challenge test
    images of rsna-sample (their labels' source_split column says which are test images)."""
    import cv2
    import numpy as np

    from common import compare, pipeline, results
    run, _ = tiny_task
    out = tmp_path / "run"
    result = run("train", "--data", "phantoms/tiny", "--out", str(out), "--epochs", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    own = json.loads((out / "run.json").read_text())["evaluations"]["test"]
    other = tmp_path / "official"
    (other / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["id,boneage,male,source_split"]
    for i in range(10):
        cv2.imwrite(str(other / "images" / f"{i}.png"), rng.integers(0, 255, (80, 64), dtype=np.uint8))
        rows.append(f"{i},{12 * (i + 1)},{i % 2 == 0},{'test' if i < 6 else 'train'}")
    (other / "labels.csv").write_text("\n".join(rows) + "\n")
    result = run("evaluate", "--data", "phantoms/tiny", "--out", str(out), "--eval-data", f"folder:{other}",
                 "--split-column", "no_such_column")
    assert result.returncode == 2 and "has no column 'no_such_column' (--split-column)" in result.stderr, result.stderr
    result = run("evaluate", "--data", "phantoms/tiny", "--out", str(out), "--eval-data", f"folder:{other}",
                 "--split-column", "source_split")
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((out / "run.json").read_text())
    key = "test-on-folder-official-by-source_split"
    assert record["evaluations"]["test"] == own  # the run's own test evaluation is kept as it was
    ev = record["evaluations"][key]
    assert (ev["split"], ev["images"], ev["dataset"]) == ("test", 6, "folder/official-by-source_split")
    assert ev["trained_on"] == {"dataset": record["dataset"]["name"], "fingerprint": record["dataset"]["fingerprint"]}
    assert len(pd.read_csv(out / key / "predictions.csv")) == 6
    # Each evaluation keeps its no-learning reference: the training split's mean age per sex, of the data
    # the run was trained on (phantoms/tiny), on the images evaluated (here the six official ones).
    from common.reference import no_learning
    assert own["no_learning"] == pytest.approx(no_learning(tiny_phantoms, "test"))
    train = [(float(e["boneage_months"]), int(e["male"])) for e in pipeline.read_split(tiny_phantoms, "train")]
    mean = {m: np.mean([a for a, male in train if male == m]) for m in (0, 1)}
    ages = [(12.0 * (i + 1), int(i % 2 == 0)) for i in range(6)]
    assert ev["no_learning"] == pytest.approx({"n": 6, "pooled": np.mean([abs(a - np.mean([t for t, _ in train]))
                                                                           for a, _ in ages]),
                                               "per_sex": np.mean([abs(a - mean[m]) for a, m in ages])})
    # compare puts it in that dataset's experiment, says the runs were trained elsewhere, and takes the
    # no-learning reference from the records: it opens no dataset for it.
    monkeypatch.setattr(compare, "mean_predictor", lambda *a, **k: pytest.fail("compare reopened the dataset"))
    record["_dir"] = "run"
    (experiment,) = [k for k in compare.experiments([record]) if k[0] == "folder/official-by-source_split"]
    assert experiment[2] == "test"
    text = compare.sections([record], {}, tmp_path, n_boot=50, plots_linked=False)
    assert "the runs were trained on phantoms/tiny" in text, text
    assert "predicting each sex's phantoms/tiny's training-split mean age" in text, text
    assert key in "\n".join(results.run_rows([record], {}))  # the per-run table lists it under its own name


def test_init_from_starts_a_run_from_another_runs_weights_and_records_it(tiny_task, tmp_path):
    run, _ = tiny_task
    first, second = tmp_path / "first", tmp_path / "second"
    result = run("train", "--data", "phantoms/tiny", "--out", str(first), "--epochs", "1", "--no-eval")
    assert result.returncode == 0, result.stdout + result.stderr
    result = run("train", "--data", "phantoms/tiny", "--out", str(second), "--epochs", "1", "--no-eval",
                 "--init-from", str(first))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Initialised from {first} (best.weights.h5): loaded 2 of 2 layers" in result.stdout
    source = json.loads((second / "run.json").read_text())["init_from"]
    assert (source["run"], source["loaded_layers"], source["skipped"]) == (str(first), 2, [])
    assert source["commit"] == json.loads((first / "run.json").read_text())["commit"] and source["fingerprint"]
    result = run("train", "--data", "phantoms/tiny", "--out", str(tmp_path / "third"), "--init-from", str(tmp_path))
    assert result.returncode == 2 and "no config.json in it" in result.stderr, result.stdout + result.stderr
    assert not (tmp_path / "third" / "checkpoints").exists()  # refused before any training


def test_predict_needs_sex_and_skips_unreadable_files(tiny_task, tmp_path, shared_data):
    run, _ = tiny_task
    out = tmp_path / "run"
    assert run("train", "--data", "phantoms/tiny", "--out", str(out), "--epochs", "1", "--no-eval").returncode == 0
    image = next((shared_data / "rsna-sample" / "images").glob("*.png"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"garbage")
    refused = run("predict", str(image), "--out", str(out))
    assert refused.returncode != 0 and "needs the patient's sex" in refused.stderr
    csv = tmp_path / "pred.csv"
    ok = run("predict", str(image), str(broken), "--sex", "F", "--out", str(out), "--output-csv", str(csv))
    assert ok.returncode == 0, ok.stderr
    table = pd.read_csv(csv)
    assert table.loc[table["file"] == str(image), "boneage_months"].notna().all()
    assert "cannot decode" in table.loc[table["file"] == str(broken), "error"].iloc[0]
    assert "skipped" in ok.stderr


def test_a_full_disk_is_a_clear_error(monkeypatch, capsys):
    import errno

    from common import train
    from common.task import DataSpec, Task

    def get_config(variant=""):
        raise OSError(errno.ENOSPC, "No space left on device")
    task = Task(paper="tiny", citation="", get_config=get_config, build_model=None, data=DataSpec(None, None),
                loss=None, metrics=None, predict=None)
    assert train.main(task, ["train", "--data", "phantoms"]) == 2
    err = capsys.readouterr().err
    assert "disk is full" in err and "rerun the same command to resume" in err


def test_evaluation_reads_the_sex_beside_the_inputs_of_a_model_without_sex_input():
    """An ablation model has no "male" input; evaluation still gets each image's sex (by-sex metrics)."""
    import numpy as np
    import tensorflow as tf

    from common import train as train_lib

    class NoSexTask:
        @staticmethod
        def predict(model, inputs, config):
            assert "male" not in inputs
            return {"regression": np.asarray(inputs["image"]).reshape(-1) * 0 + 100.0}

    def to_model_io(batch):
        return {"image": batch["image"]}, {"months": batch["boneage_months"]}

    batch = {"id": tf.constant(["a", "b"]), "image": tf.zeros((2, 1)), "male": tf.constant([1, 0], tf.int64),
             "boneage_months": tf.constant([90.0, 110.0])}
    ds = tf.data.Dataset.from_tensors(batch).map(train_lib.with_ids(to_model_io))
    estimates, targets, males, ids = train_lib.predict_dataset(NoSexTask, None, None, ds)
    assert ids == ["a", "b"] and males.tolist() == [1, 0] and targets.tolist() == [90.0, 110.0]
    assert estimates["regression"].tolist() == [100.0, 100.0]


def test_a_tasks_extra_columns_are_kept_apart_and_the_age_target_is_found_among_several():
    """A multi-task model's batches carry several targets (the age is "months"); a task's per-image
    columns (Task.extra_columns, e.g. interval bounds) are not estimates."""
    import numpy as np
    import tensorflow as tf

    from common import train as train_lib

    class IntervalTask:
        extra_columns = ("lower_90", "upper_90")

        @staticmethod
        def predict(model, inputs, config):
            loc = np.full(2, 100.0)
            return {"location": loc, "lower_90": loc - 10, "upper_90": loc + 10}

    def to_model_io(batch):
        return {"image": batch["image"]}, {"months": batch["boneage_months"], "sex": batch["male"]}

    batch = {"id": tf.constant(["a", "b"]), "image": tf.zeros((2, 1)), "male": tf.constant([1, 0], tf.int64),
             "boneage_months": tf.constant([90.0, 110.0])}
    ds = tf.data.Dataset.from_tensors(batch).map(train_lib.with_ids(to_model_io))
    extras = {}
    estimates, targets, _, _ = train_lib.predict_dataset(IntervalTask, None, None, ds, extras=extras)
    assert list(estimates) == ["location"] and targets.tolist() == [90.0, 110.0]
    assert extras["lower_90"].tolist() == [90.0, 90.0] and extras["upper_90"].tolist() == [110.0, 110.0]
    unnamed = tf.data.Dataset.from_tensors(batch).map(train_lib.with_ids(
        lambda b: ({"image": b["image"]}, {"age": b["boneage_months"], "sex": b["male"]})))
    with pytest.raises(ValueError, match="none named 'months'"):
        train_lib.predict_dataset(IntervalTask, None, None, unnamed)


# ----------------------------------------------------------------------------- the JAX backend
# tf.data still feeds the batches; JAX trains. JAX_PLATFORMS=cpu: a test never waits on a GPU driver.
JAX = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
# Two devices on this CPU, as on a machine with two GPUs. TF_DETERMINISTIC_OPS: the training pipeline
# otherwise lets its parallel maps hand examples on out of order (faster), so two runs with the same
# seed see different batches; deterministic, both runs of a comparison see the same batches.
TWO_DEVICES = {**JAX, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "TF_DETERMINISTIC_OPS": "1"}


@requires_jax
def test_train_resume_evaluate_and_predict_with_the_jax_backend(tiny_task, tmp_path):
    import cv2
    import numpy as np
    run, _ = tiny_task
    out = tmp_path / "run"
    args = ["--data", "phantoms/tiny", "--out", str(out)]
    first = run("train", *args, "--epochs", "1", "--split", "validation", env=JAX)
    assert first.returncode == 0, first.stdout + first.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["hardware"]["keras_backend"] == "jax" and record["status"] == "evaluated"
    assert (record["distribution"]["name"], len(record["distribution"]["device_names"])) == ("none", 1)
    assert record["evaluations"]["validation"]["images"] == 16
    # Rerun with more epochs: it resumes after the saved epoch (weights and optimizer state), no kill needed.
    second = run("train", *args, "--epochs", "2", "--no-eval", env=JAX)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Resuming after epoch 1" in second.stdout and "Epoch 2/2" in second.stdout
    assert "Epoch 1/" not in second.stdout
    assert sorted(pd.read_csv(out / "metrics.csv")["epoch"]) == [0, 1]
    assert json.loads((out / "run.json").read_text())["epochs_done"] == 2
    # evaluate and predict on their own, in a new process: the model gets NumPy batches, not TensorFlow tensors.
    evaluated = run("evaluate", *args, "--split", "validation", env=JAX)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    assert pd.read_csv(out / "validation" / "predictions.csv")["boneage_pred"].notna().sum() == 16
    image = tmp_path / "hand.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (80, 60), dtype=np.uint8))
    csv = tmp_path / "pred.csv"
    predicted = run("predict", str(image), "--sex", "M", "--out", str(out), "--output-csv", str(csv), env=JAX)
    assert predicted.returncode == 0, predicted.stdout + predicted.stderr
    assert pd.read_csv(csv)["boneage_months"].notna().all()


@requires_jax
def test_two_devices_train_as_one_does_and_resume(tiny_task, tmp_path):
    """DataParallel on 2 devices: the same epoch-1 loss as 1 device (same seed, same batches), and it learns."""
    run, _ = tiny_task
    one, two = tmp_path / "one", tmp_path / "two"
    # 15 images a split in batches of 6: 2 training steps an epoch, 3 images per device and step, and a
    # last validation batch of 3 images, which 2 devices cannot share (each device validates it whole).
    args = ["--data", "phantoms/tiny", "--limit", "15", "--batch-size", "6", "--no-eval"]
    single = run("train", *args, "--out", str(one), "--epochs", "1", "--devices", "1", env=TWO_DEVICES)
    assert single.returncode == 0, single.stdout + single.stderr
    double = run("train", *args, "--out", str(two), "--epochs", "1", env=TWO_DEVICES)  # --devices auto: both
    assert double.returncode == 0, double.stdout + double.stderr
    assert "Data parallel on 2 devices" in double.stdout
    a, b = pd.read_csv(one / "metrics.csv"), pd.read_csv(two / "metrics.csv")
    # Not bit-equal: the two devices sum their halves of the batch in another order than one device does.
    for column in ("loss", "val_loss", "val_mae"):
        assert b[column].iloc[0] == pytest.approx(a[column].iloc[0], rel=1e-5), column
    record = json.loads((two / "run.json").read_text())
    distribution = record["distribution"]  # device names as JAX gives them (cpu:0 here, cuda:0 on a GPU)
    assert (distribution["name"], distribution["devices"], distribution["per_device_batch"]) == ("DataParallel", 2, 3)
    assert len(set(distribution["device_names"])) == 2
    # Resumed on 2 devices, then evaluated there: it learns (the validation MAE falls), the record is whole.
    resumed = run("train", *args[:-1], "--out", str(two), "--epochs", "3", "--split", "validation", env=TWO_DEVICES)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Resuming after epoch 1" in resumed.stdout and "Epoch 1/" not in resumed.stdout
    log = pd.read_csv(two / "metrics.csv")
    # Learning is read on the validation MAE (the same 15 images each epoch), not on the training loss: each
    # epoch trains on another 12 of the 15 images (the shuffled order differs, a partial batch is dropped).
    assert sorted(log["epoch"]) == [0, 1, 2] and log["val_mae"].is_monotonic_decreasing, log
    record = json.loads((two / "run.json").read_text())
    assert record["epochs_done"] == 3 and record["evaluations"]["validation"]["images"] == 15
    # A batch the devices cannot share equally is refused before any data is built, saying why.
    odd = run("train", *args, "--out", str(tmp_path / "odd"), "--batch-size", "7", env=TWO_DEVICES)
    assert odd.returncode == 2 and "does not divide by the 2 devices" in odd.stderr, odd.stdout + odd.stderr
    assert not (tmp_path / "odd").exists()


def test_several_devices_or_machines_are_refused_with_tensorflow(monkeypatch, capsys):
    """The TensorFlow backend trains on one device: --devices 2 and a TF_CONFIG of two workers are
    refused (with the way that works), never run as something else."""
    import keras

    from common import train
    from common.config import Config
    from common.task import DataSpec, Task
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the TensorFlow backend's refusals")
    task = Task(paper="tiny", citation="", get_config=lambda variant="": Config(
                    {"seed": 0, "data": {"image_size": 32}, "train": {"epochs": 1, "batch_size": 8}}),
                build_model=None, data=DataSpec(None, None), loss=None, metrics=None, predict=None)
    assert train.main(task, ["train", "--data", "phantoms", "--devices", "2"]) == 2
    assert "needs KERAS_BACKEND=jax" in capsys.readouterr().err
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["localhost:23451", "localhost:23452"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert train.main(task, ["train", "--data", "phantoms"]) == 2
    err = capsys.readouterr().err
    assert "several machines is not supported" in err and "KERAS_BACKEND=jax" in err


# ----------------------------------------------------------------------------- several processes
def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def start_processes(run, args, count=2, env=JAX):
    """`count` processes of one run on this machine (one CPU device each, gloo between them), as on
    `count` machines: the same command, each with its own --process-id."""
    coordinator = f"localhost:{free_port()}"
    return [run(*args, "--num-processes", str(count), "--process-id", str(i), "--coordinator", coordinator,
                wait=False, env=env) for i in range(count)]


def finish(procs):
    outputs = [proc.communicate(timeout=SUBPROCESS_TIMEOUT_S)[0] for proc in procs]
    return [proc.returncode for proc in procs], outputs


@requires_jax
def test_two_processes_train_one_run_written_once_and_resume_after_a_kill(tiny_task, tmp_path):
    import time
    run, _ = tiny_task
    out = tmp_path / "run"
    # 48 training images, a global batch of 16: 8 per process and step, 3 steps an epoch.
    args = ["train", "--data", "phantoms/tiny", "--out", str(out)]
    codes, outputs = finish(start_processes(run, [*args, "--epochs", "1", "--split", "validation"]))
    assert codes == [0, 0], "\n-----\n".join(outputs)
    assert "Data parallel on 2 devices of 2 processes" in outputs[0], outputs[0]
    # Process 0 alone wrote the run directory and evaluated: one row an epoch, one evaluation.
    assert "process 0 evaluates" in outputs[1] and "Evaluating" not in outputs[1], outputs[1]
    assert "Evaluating" in outputs[0]
    for name in ("config.json", "run.json", "metrics.csv", "checkpoints/best.weights.h5",
                 "checkpoints/last.weights.h5", "backup/epoch-0001.weights.h5", "validation/predictions.csv"):
        assert (out / name).exists(), name
    assert sorted(pd.read_csv(out / "metrics.csv")["epoch"]) == [0]
    assert not list(out.rglob(".*.tmp"))  # no write left half-done
    record = json.loads((out / "run.json").read_text())
    distribution = record["distribution"]
    assert (distribution["name"], distribution["devices"], distribution["processes"],
            distribution["per_process_batch"]) == ("DataParallel", 2, 2, 8), distribution
    assert record["status"] == "evaluated" and record["epochs_done"] == 1
    assert record["evaluations"]["validation"]["images"] == 16

    # Kill one process once an epoch more is logged: the other stops too (it cannot train alone).
    procs = start_processes(run, [*args, "--epochs", "40", "--no-eval"])
    metrics = out / "metrics.csv"
    deadline = time.time() + SUBPROCESS_TIMEOUT_S
    while time.time() < deadline and all(proc.poll() is None for proc in procs):
        if len(metrics.read_text().strip().splitlines()) >= 3:  # the header and two epochs
            break
        time.sleep(0.2)
    assert all(proc.poll() is None for proc in procs), "\n-----\n".join(proc.stdout.read() for proc in procs)
    procs[1].send_signal(signal.SIGKILL)
    survivor = procs[0].communicate(timeout=SUBPROCESS_TIMEOUT_S)[0]
    procs[1].wait(timeout=60)
    assert procs[0].returncode != 0, survivor
    done_before = int(pd.read_csv(metrics)["epoch"].max()) + 1
    assert 2 <= done_before < 40, survivor
    # Rerun both: they resume after the last saved epoch, both from process 0's backup.
    codes, outputs = finish(start_processes(run, [*args, "--epochs", str(done_before + 1), "--no-eval"]))
    assert codes == [0, 0], "\n-----\n".join(outputs)
    saved = int(outputs[0].split("Resuming after epoch ")[1].split(" ")[0])
    assert saved in (done_before, done_before - 1), outputs[0]  # a kill between a row and its backup: one less
    for output in outputs:
        assert f"Epoch {saved + 1}/{done_before + 1}" in output and "Epoch 1/" not in output, output
    log = pd.read_csv(metrics)
    assert sorted(log["epoch"].unique()) == list(range(done_before + 1))
    record = json.loads((out / "run.json").read_text())
    assert record["epochs_done"] == done_before + 1 and record["status"] == "trained"


def test_process_flags_and_variables_are_checked_before_anything_runs():
    """A combination that could only fail later (or hang, waiting for a process that never comes)
    is refused with what to pass; the variables Keras and JAX document stand in for the flags."""
    from common.errors import UsageError
    from common.options import RunOptions
    from common.train import process_settings

    def settings(environ=None, **flags):
        return process_settings(RunOptions(**flags), environ or {})

    assert settings() == (1, 0, None)
    assert settings(num_processes=1) == (1, 0, None)
    assert settings(num_processes=2, process_id=1, coordinator="10.0.0.1:1234") == (2, 1, "10.0.0.1:1234")
    assert settings({"KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "0",
                     "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234,10.0.0.2:2345"}) == (2, 0, "10.0.0.1:1234")
    assert settings({"JAX_COORDINATOR_ADDRESS": "host:99"}, num_processes=2, process_id=0) == (2, 0, "host:99")
    refused = {
        "outside 0 to 1": dict(num_processes=2, process_id=2, coordinator="localhost:1234"),
        "pass --process-id I": dict(num_processes=2, coordinator="localhost:1234"),
        "needs --coordinator HOST:PORT": dict(num_processes=2, process_id=0),
        "expected HOST:PORT": dict(num_processes=2, process_id=0, coordinator="localhost"),
        "pass --num-processes N as well": dict(process_id=1, coordinator="localhost:1234"),
    }
    for message, flags in refused.items():
        with pytest.raises(UsageError, match=message):
            settings(**flags)
    with pytest.raises(UsageError, match="expected a whole number"):
        settings({"KERAS_DISTRIBUTION_NUM_PROCESSES": "two"})


@requires_jax
def test_a_bad_process_flag_is_a_clear_error_not_a_traceback(tiny_task, tmp_path):
    run, _ = tiny_task
    out = tmp_path / "run"
    result = run("train", "--data", "phantoms/tiny", "--out", str(out), "--num-processes", "2", "--process-id", "2",
                 "--coordinator", f"localhost:{free_port()}", env=JAX)
    assert result.returncode == 2 and "--process-id 2 is outside 0 to 1" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
    result = run("train", "--data", "phantoms/tiny", "--out", str(out), "--num-processes", "2", "--process-id", "0",
                 "--coordinator", f"localhost:{free_port()}", env={**JAX, "KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 2 and "needs KERAS_BACKEND=jax" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_training_again_from_the_start_in_an_old_run_folder_keeps_none_of_its_clock(tiny_task, tmp_path):
    """A run folder whose weights are gone (never committed) but whose record and log stayed: training
    again starts a new clock and log (the old log kept beside); only a resume adds to them."""
    import shutil
    run, _ = tiny_task
    out = tmp_path / "run"
    flags = ("train", "--data", "phantoms/tiny", "--out", str(out), "--epochs", "1", "--no-eval")
    assert run(*flags).returncode == 0
    for folder in ("checkpoints", "backup"):
        shutil.rmtree(out / folder, ignore_errors=True)
    record = json.loads((out / "run.json").read_text())
    record.update(wall_time_s=99999.0, started="2000-01-01T00:00:00+00:00")
    (out / "run.json").write_text(json.dumps(record))
    result = run(*flags)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["wall_time_s"] < 99999.0 and record["started"] != "2000-01-01T00:00:00+00:00"
    assert len(pd.read_csv(out / "metrics.csv")) == 1 and len(pd.read_csv(out / "metrics.previous.csv")) == 1
