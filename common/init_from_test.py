"""--init-from: a run starts from another run's weights, layer by layer, by name and shape."""
import json
import types

import keras
import numpy as np
import pytest

from common import init_from
from common.errors import UsageError


def build_model(config):
    """A small network whose dense head's input grows with the image size, as rsna17_winner's does."""
    size = config["data"]["image_size"]
    image = keras.Input((size, size, 1), name="image")
    x = keras.layers.Conv2D(4, 3, strides=2, name="stem")(image)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(4, 3, strides=2)(x)  # automatic name: its suffix differs between the two builds
    x = keras.layers.Flatten()(x)
    return keras.Model(image, keras.layers.Dense(1, name="head")(x))


TASK = types.SimpleNamespace(build_model=build_model)


def trained_run(root, size=16, name="net"):
    """A run directory as `train` leaves it: config.json, run.json, checkpoints/best.weights.h5."""
    run = root / f"run{size}"
    (run / "checkpoints").mkdir(parents=True)
    config = {"name": name, "data": {"image_size": size}}
    model = build_model(config)
    for w in model.weights:  # recognisable weights: not what a fresh model starts with
        w.assign(np.full(w.shape, 0.5, "float32"))
    model.save_weights(run / "checkpoints" / "best.weights.h5")
    (run / "config.json").write_text(json.dumps(config))
    (run / "run.json").write_text(json.dumps({"commit": "c0ffee", "image_size": size, "variant": "thumbs",
                                              "dataset": {"name": "folder/rsna-thumbs100", "fingerprint": "f1"}}))
    return run


def test_layers_whose_name_and_shapes_match_are_loaded_and_the_rest_listed(tmp_path):
    source = init_from.read_source(trained_run(tmp_path), TASK, {"name": "net"})
    model = build_model({"data": {"image_size": 32}})  # larger input: the head's input grows, 3x3x4 -> 7x7x4
    lines = []
    report = init_from.load_matching(model, source, log=lines.append)
    assert report["loaded_layers"] == 3 and report["layers"] == 4
    assert report["skipped"] == ["head: shapes [(36, 1), (1,)] in the source, [(196, 1), (1,)] here"]
    assert report["commit"] == "c0ffee" and report["dataset"] == "folder/rsna-thumbs100" and report["image_size"] == 16
    for layer in model.layers:
        if layer.name != "head" and layer.weights:
            assert all(np.allclose(np.asarray(w), 0.5) for w in layer.weights), layer.name
    assert not np.allclose(np.asarray(model.get_layer("head").weights[0]), 0.5)  # kept its initial weights
    assert lines[0].startswith(f"Initialised from {source.run_dir} (best.weights.h5): loaded 3 of 4 layers")
    assert lines[1] == "  skipped " + report["skipped"][0]


def test_a_run_of_sub_runs_gives_the_sub_run_of_the_same_name(tmp_path):
    run = trained_run(tmp_path)
    parent = tmp_path / "second"
    parent.mkdir()
    run.rename(parent / "female")
    (parent / "config.json").write_text(json.dumps({"name": "net"}))  # the combined run's own config, no weights
    assert init_from.find_source_run(parent, sub_run="female") == parent / "female"
    assert init_from.find_source_run(parent, sub_run="elsewhere") == parent


def test_wrong_sources_are_refused_with_the_reason(tmp_path):
    with pytest.raises(UsageError, match="no such run directory"):
        init_from.read_source(tmp_path / "nowhere", TASK, {"name": "net"})
    with pytest.raises(UsageError, match="no config.json"):
        init_from.read_source(tmp_path, TASK, {"name": "net"})
    run = trained_run(tmp_path, name="other_paper")
    with pytest.raises(UsageError, match="a other_paper run; this is a net run"):
        init_from.read_source(run, TASK, {"name": "net"})
    (run / "checkpoints" / "best.weights.h5").unlink()
    with pytest.raises(UsageError, match="no trained weights"):
        init_from.read_source(run, TASK, {"name": "other_paper"})


def test_a_network_with_nothing_in_common_is_refused(tmp_path):
    source = init_from.read_source(trained_run(tmp_path), TASK, {"name": "net"})
    other = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, name="other")])
    with pytest.raises(UsageError, match="none of this network's 1 layers with weights matches"):
        init_from.load_matching(other, source, log=lambda *_: None)


def test_a_run_of_another_network_of_the_same_paper_is_refused(tmp_path):
    """iglovikov18 trains several networks under one name: a key-point run cannot start a segmentation one."""
    run = trained_run(tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "stage": "keypoints"}))
    with pytest.raises(UsageError, match="a run of its 'keypoints' network; this run trains its 'segment' network"):
        init_from.check_source(run, {"name": "net", "stage": "segment"})


def test_layers_named_to_keep_their_initial_weights_are_not_loaded_and_say_why(tmp_path):
    """train.init_keep_initial: e.g. larson18 r512_newhead starts its head afresh, as the sex-ablation arm
    r512_nosex must (its head does not fit), so the pair differs in the sex handling alone."""
    source = init_from.read_source(trained_run(tmp_path), TASK, {"name": "net"})
    model = build_model({"data": {"image_size": 16}})  # same size: every layer would load
    report = init_from.load_matching(model, source, log=lambda *_: None, keep_initial=("stem",))
    assert report["loaded_layers"] == 3
    assert report["skipped"] == ["stem: kept at its initial weights (train.init_keep_initial)"]
    assert not np.allclose(np.asarray(model.get_layer("stem").weights[0]), 0.5)
    assert np.allclose(np.asarray(model.get_layer("head").weights[0]), 0.5)
