"""Tests for the config checks the reproductions' config tests rely on."""
import pytest

from common.config import Config, changed_keys, flatten, values_without_source
from common.errors import UsageError


def _documented():
    config = Config({"a": 1,  # taken from somewhere
                     "b": {"c": 2}})  # reconstructed: why
    config.a = 3  # small: smaller
    return config


def _undocumented():
    config = Config({"a": 1,  # taken from somewhere
                     "b": 2})
    config.a = 3
    return config


def test_values_without_source_finds_every_undocumented_value():
    tags = ("taken from", "reconstructed", "small:")
    assert values_without_source(_documented, tags) == []
    assert values_without_source(_undocumented, tags) == ['"b": 2})', "config.a = 3"]


def test_flatten_and_changed_keys():
    a, b = Config({"x": {"y": 1, "z": 2}}), Config({"x": {"y": 1, "z": 3}, "w": 0})
    assert flatten(a) == {"x.y": 1, "x.z": 2}
    assert changed_keys(a, b) == {"x.z", "w"}


def _train_config():
    return Config({"seed": 0, "data": {"name": "rsna", "augment": True},
                   "train": {"epochs": 30, "sizes": [1, 2], "optimizer": {"name": "adam", "learning_rate": 1e-3}}})


def test_overrides_take_values_of_each_keys_type():
    config = _train_config().apply_overrides(["train.epochs=5", "train.optimizer.learning_rate=1",
                                              "data.name=2017", "data.augment=false", "train.sizes=(3, 4)"])
    assert config.train.epochs == 5
    assert config.train.optimizer.learning_rate == 1.0 and isinstance(config.train.optimizer.learning_rate, float)
    assert config.data.name == "2017"  # a text key keeps the text as written
    assert config.data.augment is False and config.train.sizes == [3, 4]


def test_an_unknown_key_names_the_closest_keys_and_is_still_a_key_error():
    with pytest.raises(UsageError) as info:
        _train_config().apply_overrides(["train.optimiser.learning_rate=1e-4"])
    assert isinstance(info.value, KeyError)
    assert str(info.value) == ("--set train.optimiser.learning_rate=1e-4: config key 'train.optimiser.learning_rate' "
                               "does not exist; did you mean 'train.optimizer.learning_rate'?")
    with pytest.raises(UsageError, match=r"config key 'train.zzz' does not exist; keys there: \['epochs', "):
        _train_config().override("train.zzz", 1)


def test_an_override_without_equals_or_of_the_wrong_type_names_the_key_value_and_type():
    with pytest.raises(UsageError, match=r"^--set train.epochs: expected KEY=VALUE, e.g. --set train.epochs=10$"):
        _train_config().apply_overrides(["train.epochs"])
    with pytest.raises(UsageError) as info:
        _train_config().apply_overrides(["train.epochs=ten"])
    assert str(info.value) == ("--set train.epochs=ten: config key 'train.epochs' takes an int (it is 30); "
                               "received 'ten', a str")
    with pytest.raises(UsageError, match=r"'train.epochs' takes an int \(it is 30\); received 2.5, a float"):
        _train_config().override("train.epochs", 2.5)
    with pytest.raises(UsageError, match=r"'data.augment' takes a bool \(True or False\) \(it is True\); received 1"):
        _train_config().apply_overrides(["data.augment=1"])
    with pytest.raises(UsageError, match=r"'train' is a section, not a value; set one of its keys: \['train.epochs'"):
        _train_config().apply_overrides(["train=3"])
