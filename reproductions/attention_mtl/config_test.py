"""The attention_mtl config: each variant changes only what it names; every value has a source."""
import pytest

from common.config import changed_keys, values_without_source
from reproductions.attention_mtl import config as config_module
from reproductions.attention_mtl.config import VARIANTS, get_config


@pytest.mark.parametrize("base", ["", "r512"])
@pytest.mark.parametrize("pooling", ["gap", "gru"])
def test_the_pooling_ablations_differ_only_in_the_pooling(base, pooling):
    variant = f"{base}_{pooling}" if base else pooling
    assert changed_keys(get_config(base), get_config(variant)) == {"model.pooling"}
    assert get_config(base).model.pooling == "attention" and get_config(variant).model.pooling == pooling


def test_r512_is_the_real_resolution_budget_rule():
    assert changed_keys(get_config(), get_config("r512")) == {"train.epochs", "train.max_minutes"}
    config = get_config("r512")
    assert config.train.epochs <= 14 and config.train.max_minutes == 45
    assert config.model.pretrained == "imagenet" and config.model.weights_required
    assert config.model.aux.mask_weight == 0 and config.model.aux.sex_weight == 0  # no masks in the radiographs


def test_small_is_a_scratch_smoke_run_with_the_mask_head():
    assert changed_keys(get_config(), get_config("small")) == {
        "model.pretrained", "model.weights_required", "data.image_size", "model.d_model", "model.aux.mask_weight",
        "model.aux.mask_size", "train.epochs", "train.optimizer.learning_rate"}
    assert get_config("small").model.aux.mask_weight > 0


def test_the_default_is_the_full_size_imagenet_attention_setting():
    config = get_config()
    assert (config.data.image_size, config.model.backbone, config.model.pooling) == (384, "efficientnet_lite0",
                                                                                      "attention")
    assert config.model.sex_input and config.train.loss == "crps" and config.model.distribution == "laplace"


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="Received: variant='tiny'"):
        get_config("tiny")
    assert len(set(VARIANTS)) == len(VARIANTS)


def test_every_value_has_a_source_comment():
    missing = values_without_source(config_module.get_config, (
        "kit choice", "issue 19", "as lite0_regressor", "as every seed system", "small:", "r512:", "gap/gru:"))
    assert not missing, f"values without a source comment: {missing}"
