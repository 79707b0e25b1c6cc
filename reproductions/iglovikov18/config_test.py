"""Tests for the Iglovikov18 config: the paper's values, the variants, and the source comments."""
import ast
import inspect

import pytest

from common.config import changed_keys
from reproductions.iglovikov18 import config as config_module
from reproductions.iglovikov18 import preprocessing as pp
from reproductions.iglovikov18.config import AGE_STAGES, BASES, REGIONS, STAGES, get_config
from reproductions.iglovikov18.variants import Variant


def test_age_networks_paper_setting():
    config = get_config("regress-hand")
    m = config.model
    assert m.filters == [32, 64, 128, 128, 256, 384] and m.dense_units == 2048 and m.dropout == 0.3
    assert (m.pool_size, m.pool_padding, m.head) == (3, "valid", "regression")
    assert config.train.loss == "l1" and (m.age_offset, m.age_scale) == (120.0, 120.0)
    assert config.train.optimizer.learning_rate == 2e-5 and config.train.batch_size == 8
    assert get_config("classify-carpal").train.loss == "crossentropy"
    assert get_config("classify-carpal").model.num_classes == 240
    # The recipe's network input: the 2000 x 1500 crop of the 2080 x 1600 canvas at scale 0.25.
    assert pp.canvas_hw(config) == (520, 400)
    assert pp.region_box(config, "hand")[2:] == (500, 375)


@pytest.mark.parametrize("base", BASES)
def test_every_region_fits_the_canvas_and_the_network(base):
    from reproductions.iglovikov18.model import age_model_from_config as build_age_model
    for region in REGIONS:
        config = get_config(Variant(base, "regress", region))
        y0, x0, h, w = pp.region_box(config, region)
        assert h > 0 and w > 0
        if base:  # building the paper-size networks costs seconds; the checks above cover them
            assert build_age_model(config).input["image"].shape[1:3] == (h, w)


def test_get_config_takes_typed_variants():
    """get_config takes a Variant or its name, not the ensemble (names: variants_test.py)."""
    with pytest.raises(ValueError, match="region"):
        Variant("", "regress")
    assert get_config(Variant("small", "classify", "hand")) == get_config("small-classify-hand")
    assert config_module.all_variants() == tuple(v.name for v in Variant.all())
    assert config_module.hand_config("r512") == get_config("r512-regress-hand")
    with pytest.raises(ValueError, match="not a network.*Received: variant='thumbs-ensemble'"):
        get_config("thumbs-ensemble")


def _changed(a, b):
    return changed_keys(get_config(a), get_config(b))


def test_small_and_thumbs_change_only_sizes_lengths_and_the_scratch_rate():
    sizes = {"data.image_size", "model.pool_padding", "model.filters", "model.dense_units", "train.batch_size",
             "train.epochs", "train.optimizer.learning_rate", "train.optimizer.beta_1", "train.schedule.name"}
    assert _changed("regress-hand", "small-regress-hand") == sizes
    assert _changed("regress-hand", "thumbs-regress-hand") == sizes
    assert _changed("segment", "small-segment") == {"data.image_size", "model.depth", "model.base_filters",
                                                     "train.batch_size", "train.epochs"}
    assert _changed("keypoints", "thumbs-keypoints") <= {"data.image_size", "model.pool_padding", "model.filters",
                                                         "model.dense_units", "train.batch_size", "train.epochs"}
    small = get_config("small-classify-metacarpal")
    assert small.model.sex_handling == get_config("classify-metacarpal").model.sex_handling  # the method stays


def test_r512_is_thumbs_at_the_radiographs_sizes_under_the_budget_rule():
    """r512 keeps every thumbs network (so --init-from loads them) and changes sizes, epochs and minutes only."""
    for stage in STAGES:
        for region in (REGIONS if stage in AGE_STAGES else (None,)):
            changed = _changed(Variant("thumbs", stage, region), Variant("r512", stage, region))
            assert changed == ({"data.image_size", "train.max_minutes"} if stage in AGE_STAGES else
                               {"data.image_size", "train.epochs", "train.max_minutes"}), (stage, region)
    # The paper setting's 256-px U-Net and key-point inputs (half the radiographs' long side); the age
    # networks' canvas at the hands' own pixel size (native_scale.py), not the paper's 520.
    assert get_config("r512-segment").data.image_size == get_config("segment").data.image_size == 256
    assert get_config("r512-keypoints").data.image_size == get_config("keypoints").data.image_size == 256
    hand = get_config("r512-regress-hand")
    assert pp.canvas_hw(hand) == (400, 308) and pp.region_box(hand, "hand")[2:] == (384, 288)
    assert pp.region_box(hand, "carpal")[2:] == (108, 123) and pp.region_box(hand, "metacarpal")[2:] == (200, 231)
    # `register` stores canvases at store_scale x the canvas; above the folder datasets' 1024-px cap they would shrink.
    from common.datasets.base import DEFAULT_MAX_SIDE
    assert hand.data.image_size * hand.registration.store_scale <= DEFAULT_MAX_SIDE


def test_r512scratch_is_r512_from_random_weights_only():
    """The random-start arm of "what does the thumbnail run buy at 512 px?": every network exactly r512's
    (sizes, budget), and train refuses --init-from for it, so the pair differs in the start alone."""
    for stage in AGE_STAGES:
        for region in REGIONS:
            assert _changed(Variant("r512", stage, region), Variant("r512scratch", stage, region)) == {
                "train.init_from_forbidden"}, (stage, region)
            assert get_config(Variant("r512scratch", stage, region)).train.init_from_forbidden is True
            assert not get_config(Variant("r512", stage, region)).train.get("init_from_forbidden")


def test_r512_budget_caps_add_up_to_the_chains_two_hours():
    """At most 14 epochs and 45 minutes per network; the caps of the eight networks add up to 120 minutes,
    the whole-hand pair holding the largest share (required), the region networks the rest."""
    configs = {v: get_config(v) for v in config_module.all_variants() if v.startswith("r512-")}
    assert len(configs) == 8
    assert all(c.train.epochs <= 14 and 0 < c.train.max_minutes <= 45 for c in configs.values())
    assert sum(c.train.max_minutes for c in configs.values()) == 120
    hand = {configs[f"r512-{s}-hand"].train.max_minutes for s in AGE_STAGES}
    assert min(hand) > max(configs[f"r512-{s}-{r}"].train.max_minutes for s in AGE_STAGES for r in ("carpal", "metacarpal"))


def test_override_and_unknown_key():
    config = get_config("small-regress-hand").apply_overrides(["train.optimizer.learning_rate=0.01"])
    assert config.train.optimizer.learning_rate == 0.01
    with pytest.raises(KeyError):
        get_config("small-regress-hand").override("train.lr", 0.1)


TAGS = ("taken from", "reconstructed", "Iglovikov18", "small:", "thumbs:", "r512:", "r512scratch:", "kit choice", "the reproduction",
        "same line", "same file", "same measurement")


def test_every_value_has_a_source_comment():
    """Each literal value in the config builders names its source in a trailing comment."""
    for fn in (config_module.get_config, config_module._age_config, config_module._segment_config,
               config_module._keypoints_config):
        source = inspect.getsource(fn)
        lines = source.splitlines()
        value_lines = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if isinstance(value, ast.Dict):
                        continue
                    if isinstance(value, ast.List) and value.elts and isinstance(value.elts[0], ast.List):
                        value_lines.update(e.end_lineno for e in value.elts)
                    else:
                        value_lines.add(value.end_lineno)
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute):
                value_lines.add(node.end_lineno)
        missing = [lines[n - 1].strip() for n in sorted(value_lines) if "#" not in lines[n - 1]]
        assert not missing, f"{fn.__name__}: values without a source comment: {missing}"
        for n in value_lines:
            comment = lines[n - 1].split("#", 1)[1]
            assert any(tag in comment for tag in TAGS), comment
