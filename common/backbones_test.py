import numpy as np
import pytest

from common.backbones import STAND_IN, build_backbone, check_backbone


def test_the_stand_in_pools_or_keeps_its_grid():
    pooled = build_backbone(STAND_IN, (64, 64, 3), pooling="avg")
    grid = build_backbone(STAND_IN, (96, 96, 1), pooling=None, model_name="features")
    assert pooled(np.zeros((2, 64, 64, 3), np.float32)).shape == (2, 128)
    assert grid(np.zeros((1, 96, 96, 1), np.float32)).shape == (1, 6, 6, 128)  # four stride-2 blocks
    assert grid.name == "features" and pooled.count_params() < 150_000


def test_a_paper_backbone_is_the_keras_applications_network():
    model = build_backbone("resnet50", (32, 32, 3), model_name="resnet50")
    assert model.name == "resnet50" and model.output_shape == (None, 2048)
    assert model.count_params() == 23_587_712  # keras.applications.ResNet50 without top


@pytest.mark.parametrize("call, message", [
    (lambda: check_backbone("resnet18", "resnet50"), "'resnet50' \\(the paper's network\\) or 'tiny_cnn'"),
    (lambda: build_backbone("vgg16", (64, 64, 3)), "Unknown backbone"),
    (lambda: build_backbone("inception_v3", (64, 64, 3)), "at least 75 px"),
    (lambda: build_backbone(STAND_IN, (64, 64, 3), weights="imagenet"), "no pretrained weights"),
    (lambda: build_backbone(STAND_IN, (64, 64, 3), pooling="max"), "pooling must be"),
])
def test_bad_choices_are_refused_with_the_reason(call, message):
    with pytest.raises(ValueError, match=message):
        call()
