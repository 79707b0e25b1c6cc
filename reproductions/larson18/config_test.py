"""Tests for the Larson18 config: values, the small variant, and the source comments."""
import pytest

from common.config import changed_keys
from common.config import flatten as _flatten
from common.config import values_without_source
from reproductions.larson18 import config as config_module
from reproductions.larson18.config import get_config


def test_paper_setting():
    config = get_config()
    assert (config.data.image_size, config.data.crop_size) == (256, 224)
    assert [c["clip_limit"] for c in config.data.clahe] == [1.0, 3.0, 5.0]
    assert all(c["tile_grid"] == 8 for c in config.data.clahe)
    assert config.model.backbone == "resnet50"
    assert config.model.num_classes_per_sex == 240
    assert config.model.sex_handling == "split_head"
    assert config.eval.test_time_crops == "ten_crop"
    assert set(config.eval.estimates) == {"expected", "argmax"}


def _changed(a, b):
    a, b = _flatten(get_config(a).to_dict()), _flatten(get_config(b).to_dict())
    optional = {"train.optimizer.momentum", "train.max_minutes", "train.bn_recompute_batches",
                "train.init_keep_initial"}  # keys only some variants hold
    assert a.keys() - optional == b.keys() - optional
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def test_scratch_variant_changes_only_the_optimizer():
    assert _changed("", "scratch") == {"model.pretrained", "train.optimizer.name", "train.optimizer.momentum",
                                       "train.optimizer.learning_rate"}


def test_small_and_thumbs_variants_change_only_sizes_and_length():
    assert _changed("scratch", "small") == {"data.image_size", "data.crop_size", "data.clahe", "train.epochs",
                                            "train.batch_size", "train.schedule.warmup_epochs"}
    assert _changed("scratch", "thumbs") == {"data.image_size", "data.crop_size", "data.clahe", "train.epochs",
                                             "train.max_minutes", "train.schedule.warmup_epochs"}
    small = get_config("small")
    assert [c["clip_limit"] for c in small.data.clahe] == [1.0, 3.0, 5.0]  # the method stays
    assert small.data.crop_size < small.data.image_size <= 96


def test_r512_variant_changes_only_the_epochs_of_scratch():
    """Issue 17: the 512-px radiographs force nothing but the budget; sizes, CLAHE and warm-up stay the paper's."""
    assert _changed("scratch", "r512") == {"train.epochs", "train.max_minutes", "train.bn_recompute_batches"}
    assert _changed("", "r512") == _changed("", "scratch") | {"train.epochs", "train.max_minutes",
                                                               "train.bn_recompute_batches"}
    r512 = get_config("r512")
    assert (r512.data.image_size, r512.data.crop_size) == (256, 224)
    assert r512.train.epochs <= 14 and r512.train.max_minutes == 45  # the budget rule's caps
    assert _changed("r512", "r512_scratch") == set()  # one factor, the initial weights: --init-from or none
    assert _changed("r512", "r512_newhead") == {"train.init_keep_initial"}  # the head starts afresh
    assert _changed("r512_newhead", "r512_nosex") == {"model.sex_handling", "train.init_keep_initial"}


@pytest.mark.parametrize("base", ["", "thumbs", "r512"])
def test_nosex_variants_change_only_the_sex_handling(base):
    """The sex-input ablation (issue #8) must differ from its base in that one key, or it is no ablation."""
    nosex = get_config(f"{base}_nosex" if base else "nosex")
    assert changed_keys(get_config(base), nosex) == {"model.sex_handling"}
    assert get_config(base).model.sex_handling == "split_head"
    assert nosex.model.sex_handling == "shared_head"


@pytest.mark.parametrize("variant", ["", "small", "thumbs", "r512"])
def test_clahe_channels_stay_distinct_at_the_load_size(variant):
    from reproductions.larson18.preprocessing import opencv_clip_counts

    config = get_config(variant)
    counts = opencv_clip_counts(config.data.image_size, config.data.clahe)
    assert len(set(counts)) == 3, counts
    if variant in ("", "r512"):
        assert counts == [4, 12, 20]


def test_unknown_variant_and_override():
    with pytest.raises(ValueError, match="Received: variant='tiny'"):
        get_config("tiny")
    config = get_config().apply_overrides(["train.optimizer.learning_rate=0.001"])
    assert config.train.optimizer.learning_rate == 0.001
    with pytest.raises(KeyError):
        get_config().override("train.lr", 0.1)


def test_every_value_has_a_source_comment():
    """Each literal value line in get_config names its source in a trailing comment."""
    missing = values_without_source(config_module.get_config, (
        "taken from", "reconstructed", "Larson18", "small:", "scratch:", "thumbs:", "nosex:", "kit choice",
        "same source", "the reproduction", "r512:", "r512_newhead:"))
    assert not missing, f"values without a source comment: {missing}"
