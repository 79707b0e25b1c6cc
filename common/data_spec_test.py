"""A Task's DataSpec: its defaults leave the shared pipeline as it was; evaluate's per-example function."""
import dataclasses

import pytest

from common.data_spec import DataSpec
from common.task import Task


def test_the_defaults_change_nothing_in_the_pipeline():
    spec = DataSpec(preprocess=lambda config, training: ("pre", training), to_model_io=lambda config: "io")
    assert spec.augment(None) is None and spec.batch_augment(None) is None and spec.test_preprocess is None
    assert spec.example_filter(None) is None and spec.expand(None, True) is None and spec.expand_sample(None) is None
    assert spec.example_keys == ("id", "image", "boneage_months", "male")
    assert spec.eval_preprocess(None) == ("pre", False)  # no test-time function: preprocess as for validation
    assert dataclasses.replace(spec, test_preprocess=lambda config: "test").eval_preprocess(None) == "test"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.preprocess = None


def test_a_task_holds_its_data_spec_and_no_pipeline_hooks_of_its_own():
    fields = {f.name for f in dataclasses.fields(Task)}
    assert "data" in fields and not fields & {f.name for f in dataclasses.fields(DataSpec)}
    with pytest.raises(TypeError):
        Task(paper="tiny", citation="", get_config=None, build_model=None, loss=None, metrics=None, predict=None)
