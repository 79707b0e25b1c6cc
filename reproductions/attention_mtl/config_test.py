"""The attention_mtl config: each variant changes only what it names; every value has a source."""
import pytest

from common.config import changed_keys, values_without_source
from reproductions.attention_mtl import config as config_module
from reproductions.attention_mtl.config import (ARMS, BASES, AUX_ARMS, THUMBS_START, VARIANTS, get_config,
                                                 split_variant)

# What each ablation arm changes against its base: one factor (the sex arm also switches on the head that
# predicts the sex from the image, so that the sex label still trains; the scratch arm's second key only
# lets it train without --weights; the aux arm's two heads are one factor, and its third key says where their
# targets come from on radiographs).
ARM_CHANGES = {
    "gap": {"model.pooling": "gap"},
    "gru": {"model.pooling": "gru"},
    "nosex": {"model.sex_input": False, "model.aux.sex_weight": 1.0},
    "l1": {"model.distribution": "point"},
    "scratch": {"model.pretrained": "none", "model.weights_required": False},
    "aux": {"model.aux.mask_weight": 0.1, "model.aux.keypoint_weight": 0.1,
            "model.aux.annotations": "iglovikov18_chain"},
}


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("arm", ARMS)
def test_each_ablation_arm_changes_one_factor_of_its_base(base, arm):
    variant = f"{base}_{arm}" if base else arm
    assert split_variant(variant) == (base, arm)
    a, b = get_config(base), get_config(variant)
    assert changed_keys(a, b) == set(ARM_CHANGES[arm])
    for key, value in ARM_CHANGES[arm].items():
        section, *rest = key.split(".")
        node = b[section]
        for part in rest:
            node = node[part]
        assert node == value, (variant, key)


def test_the_pooling_ablations_differ_only_in_the_pooling():
    for base in BASES:
        assert get_config(base).model.pooling == "attention"
        assert get_config(f"{base}_gap" if base else "gap").model.pooling == "gap"


def test_r512_is_the_real_resolution_budget_rule():
    assert changed_keys(get_config(), get_config("r512")) == {"train.epochs", "train.max_minutes"}
    config = get_config("r512")
    assert config.train.epochs <= 14 and config.train.max_minutes == 45
    assert config.model.pretrained == "imagenet" and config.model.weights_required
    assert config.model.aux.mask_weight == 0 and config.model.aux.sex_weight == 0  # no masks in the radiographs


def test_r512_fromthumbs_is_r512_that_must_start_from_a_run():
    """Issue 19's headline recipe: the r512 setting, and train refuses it without --init-from
    (smoke_test.py runs the refusal)."""
    variant = f"r512_{THUMBS_START}"
    assert variant in VARIANTS and split_variant(variant) == ("r512", THUMBS_START)
    assert changed_keys(get_config("r512"), get_config(variant)) == {"train.init_from_required"}
    assert get_config(variant).train.init_from_required is True
    assert not get_config("r512").train.get("init_from_required")


def test_thumbs_is_the_thumbnail_budget_rule_at_lite0_regressors_input():
    from reproductions.lite0_regressor.config import get_config as lite0_config
    assert changed_keys(get_config(), get_config("thumbs")) == {
        "data.image_size", "train.batch_size", "train.epochs", "train.max_minutes"}
    config, lite0 = get_config("thumbs"), lite0_config("thumbs")
    assert (config.data.image_size, config.train.batch_size) == (lite0.data.image_size, lite0.train.batch_size) == (128, 32)
    assert config.train.epochs == 14 and config.train.max_minutes == 45
    assert config.model.pretrained == "imagenet" and config.model.weights_required
    aux = config.model.aux
    assert aux.mask_weight == aux.keypoint_weight == aux.sex_weight == aux.outside_mask_weight == 0


def test_small_is_a_scratch_smoke_run_with_the_mask_and_keypoint_heads():
    assert changed_keys(get_config(), get_config("small")) == {
        "model.pretrained", "model.weights_required", "data.image_size", "model.d_model", "model.aux.mask_weight",
        "model.aux.mask_size", "model.aux.keypoint_weight", "train.epochs", "train.optimizer.learning_rate"}
    assert get_config("small").model.aux.mask_weight > 0 and get_config("small").model.aux.keypoint_weight > 0


def test_real_data_settings_take_masks_and_key_points_only_from_the_chain():
    """RSNA radiographs carry neither masks nor key points: every variant but small and the aux arms leaves both
    heads and the outside-mask penalty off; the aux arms take the iglovikov18 chain's."""
    for variant in VARIANTS:
        aux = get_config(variant).model.aux
        if variant == "small":
            assert aux.annotations == "dataset"  # phantoms: their own
        elif split_variant(variant)[1] == "aux":
            assert aux.mask_weight > 0 and aux.keypoint_weight > 0 and aux.annotations == "iglovikov18_chain"
        elif split_variant(variant)[1] in ("maskonly", "keypointsonly"):
            assert (aux.mask_weight > 0) != (aux.keypoint_weight > 0) and aux.annotations == "iglovikov18_chain"
            assert aux.outside_mask_weight == 0, variant
        elif split_variant(variant)[1] == "penalty":
            assert aux.outside_mask_weight > 0 and aux.mask_weight > 0 and aux.annotations == "iglovikov18_chain"
        else:
            assert aux.mask_weight == aux.keypoint_weight == aux.outside_mask_weight == 0, variant


def test_the_default_is_the_full_size_imagenet_attention_setting():
    config = get_config()
    assert (config.data.image_size, config.model.backbone, config.model.pooling) == (384, "efficientnet_lite0",
                                                                                      "attention")
    assert config.model.sex_input and config.train.loss == "crps" and config.model.distribution == "laplace"


def test_unknown_variant_is_refused_with_the_known_ones():
    for bad in ("tiny", "r512_foo", "small_gap", "r512-gap", "_gap"):
        with pytest.raises(ValueError, match=f"Received: variant='{bad}'") as error:
            get_config(bad)
        assert "'r512_gap'" in str(error.value) and "'thumbs_scratch'" in str(error.value)
    assert len(set(VARIANTS)) == len(VARIANTS)
    assert {"thumbs", "thumbs_gap", "r512_nosex", "r512_l1", "r512_scratch"} <= set(VARIANTS)


def test_every_value_has_a_source_comment():
    missing = values_without_source(config_module.get_config, (
        "kit choice", "issue 19", "as lite0_regressor", "as every seed system", "small:", "r512:", "thumbs:", "gap/gru:",
        "nosex:", "l1:", "scratch:", "aux:", "maskonly/keypointsonly:",
        "nosexlabel:", "penalty:"))
    assert not missing, f"values without a source comment: {missing}"


def test_the_comparison_pairs_each_budget_base_with_each_of_its_arms():
    """reproductions/ablations.py: every attention_mtl pair is a base (A) against one of its one-factor arms (B)."""
    from reproductions.ablations import ABLATIONS
    pairs = [(ab["a"][1], ab["b"][1]) for ab in ABLATIONS if ab["a"][0] == "attention_mtl"]
    assert len(pairs) == len(set(pairs))
    arms = {(base, f"{base}_{arm}") for base in ("r512", "thumbs") for arm in ARMS}
    starts = {(f"r512_{THUMBS_START}", "r512"), (f"r512_{THUMBS_START}", "thumbs")}  # the start, and resolution
    heads_off = {("r512_aux", "r512_maskonly"), ("r512_aux", "r512_keypointsonly"), ("r512_nosex", "r512_nosexlabel"),
                 ("r512_penalty", "r512_aux")}
    assert set(pairs) == arms | starts | heads_off
    for ab in ABLATIONS:
        if ab["a"][0] == "attention_mtl" and (ab["a"][1], ab["b"][1]) in arms | heads_off:
            assert ab["a"][1] in VARIANTS and f"--variant {ab['a'][1]}" in " ".join(ab["commands"])
            assert ab["b"][1] in VARIANTS and f"--variant {ab['b'][1]}" in ab["commands"][-1]
            assert ("--weights" in ab["commands"][-1]) == (not ab["b"][1].endswith("scratch"))


@pytest.mark.parametrize("arm, against", [("maskonly", "aux"), ("keypointsonly", "aux"), ("nosexlabel", "nosex"),
                                         ("penalty", "aux")])
def test_each_aux_arm_turns_one_task_off_or_on_against_the_arm_with_the_others(arm, against):
    """Issue 19's "each auxiliary task off": r512_<arm> differs from r512_<against> in one task's weight only."""
    assert arm in AUX_ARMS and split_variant(f"r512_{arm}") == ("r512", arm)
    changed = changed_keys(get_config(f"r512_{against}"), get_config(f"r512_{arm}"))
    key = {"maskonly": "model.aux.keypoint_weight", "keypointsonly": "model.aux.mask_weight",
           "nosexlabel": "model.aux.sex_weight", "penalty": "model.aux.outside_mask_weight"}[arm]
    assert changed == {key}
    assert (get_config(f"r512_{arm}").model.aux[key.rpartition(".")[2]] > 0) == (arm == "penalty")  # on, or off
    with pytest.raises(ValueError, match="Received"):
        get_config(f"thumbs_{arm}")  # r512 only
