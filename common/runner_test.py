"""The Runner protocol: a Task's default single run delegates to common.train; a paper's runner
overrides only what differs (rsna17_second: one sub-run per sex; attention_mtl: checks and calibration)."""
import pytest

from common import runner, train
from common.options import RunOptions
from common.task import DataSpec, Task


def _task(**kwargs):
    return Task(paper="tiny", citation="", get_config=None, build_model=None, data=DataSpec(None, None),
                loss=None, metrics=None, predict=None, **kwargs)


def test_a_task_is_a_single_run_unless_it_names_a_runner(monkeypatch):
    task = _task()
    assert isinstance(task.runner, runner.SingleRun) and not task.runner.several_models
    calls = []
    monkeypatch.setattr(train, "train", lambda task, options, log=print: calls.append(("train", options)) or "run")
    monkeypatch.setattr(train, "load_trained", lambda task, config, run_dir, model=None, log=print: (model, run_dir))
    options = RunOptions(out="somewhere")
    assert task.runner.train(task, options) == "run" and calls == [("train", options)]
    assert task.runner.load_trained(task, None, "run-dir", model="m") == ("m", "run-dir")
    assert task.runner.calibrate(task, None, None, None, "run-dir") is None
    assert task.runner.add_flags("train", None) is None


def test_a_runner_of_several_models_refuses_several_processes():
    from common.errors import UsageError

    class TwoModels(runner.SingleRun):
        several_models = True
    options = RunOptions(num_processes=2, process_id=0, coordinator="localhost:1234")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        with pytest.raises(UsageError, match="needs KERAS_BACKEND=jax"):
            train.start_processes(_task(runner=TwoModels()), options)
        return
    with pytest.raises(UsageError, match="trains several models in one go"):
        train.start_processes(_task(runner=TwoModels()), options)

