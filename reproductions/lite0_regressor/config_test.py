"""The lite0_regressor config: each transfer pair differs in the initial weights only; every value has a source."""
import pytest

from common.config import changed_keys, values_without_source
from reproductions.lite0_regressor import config as config_module
from reproductions.lite0_regressor.config import get_config

INITIAL_WEIGHTS = {"model.pretrained", "model.weights_required"}


@pytest.mark.parametrize("pretrained, scratch", [("", "scratch"), ("thumbs", "thumbs_scratch"), ("r512", "r512_scratch")])
def test_each_transfer_pair_differs_only_in_the_initial_weights(pretrained, scratch):
    assert changed_keys(get_config(pretrained), get_config(scratch)) == INITIAL_WEIGHTS
    assert get_config(pretrained).model.pretrained == "imagenet" and get_config(pretrained).model.weights_required
    assert get_config(scratch).model.pretrained == "none" and not get_config(scratch).model.weights_required


def test_budget_variants_change_only_size_batch_and_length():
    assert changed_keys(get_config(), get_config("thumbs")) == {"data.image_size", "train.batch_size", "train.epochs"}
    assert changed_keys(get_config(), get_config("r512")) == {"train.epochs", "train.max_minutes"}
    assert get_config("r512").train.epochs <= 14  # the budget rule's cap


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="Received: variant='tiny'"):
        get_config("tiny")


def test_every_value_has_a_source_comment():
    missing = values_without_source(config_module.get_config, (
        "kit choice", "issue 18", "EfficientNet-Lite0 reference", "as every seed system", "RSNA training labels",
        "their standard deviation", "scratch:", "small:", "thumbs:", "r512:"))
    assert not missing, f"values without a source comment: {missing}"
