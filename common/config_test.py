"""Tests for the config checks the reproductions' config tests rely on."""
from common.config import Config, changed_keys, flatten, values_without_source


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
