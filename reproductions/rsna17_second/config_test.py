"""The rsna17_second config: the paper setting, the variants, the grid geometry, the source comments."""
import pytest

from common.config import changed_keys, values_without_source

from reproductions.rsna17_second import config as config_module
from reproductions.rsna17_second.config import VARIANTS, get_config
from reproductions.rsna17_second.preprocessing import patch_stride


def test_paper_setting():
    config = get_config()
    data = config.data
    assert (data.image_size, data.patch_size, data.patch_grid) == (512, 128, 7)
    assert patch_stride(data.image_size, data.patch_size, data.patch_grid) == 64
    assert config.model.backbone == "resnet50" and config.model.sex == "both"
    assert set(config.model.target_norm) == {"female", "male"}
    assert config.train.patches_per_image == 49  # every patch is a training example
    assert config.eval.primary_fusion == config.eval.fusions[0] == "mean"
    assert set(config.eval.fusions) == {"mean", "median", "learned"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_grid_fits_every_variant_exactly(variant):
    data = get_config(variant).data
    stride = patch_stride(data.image_size, data.patch_size, data.patch_grid)
    assert (data.patch_grid - 1) * stride + data.patch_size == data.image_size
    assert data.patch_size >= 32  # ResNet-50's smallest input
    assert 1 <= get_config(variant).train.patches_per_image <= data.patch_grid ** 2


def test_variants_change_only_sizes_and_length():
    paper, thumbs, small = (get_config(v) for v in ("", "thumbs", "small"))
    assert changed_keys(paper, thumbs) == {
        "data.image_size", "data.patch_size", "train.patches_per_image", "train.epochs", "model.bn_momentum"}
    assert changed_keys(thumbs, small) == {
        "data.image_size", "train.patches_per_image", "train.batch_size", "train.epochs"}


def test_whole_variants_change_only_what_makes_one_patch_the_whole_image():
    """Issue #8 ablation: the same pipeline, network and recipe; 1 x 1 grid, patch = image, 1 row."""
    one_patch = {"data.patch_grid", "data.patch_size", "train.patches_per_image"}
    paper, whole = get_config(), get_config("whole")
    assert changed_keys(paper, whole) == one_patch
    assert changed_keys(get_config("thumbs"), get_config("thumbs_whole")) == one_patch | {"train.epochs"}
    for config in (whole, get_config("thumbs_whole")):
        data = config.data
        assert data.patch_grid == 1 and data.patch_size == data.image_size and config.train.patches_per_image == 1
    assert whole.data.image_size == 512 and get_config("thumbs_whole").data.image_size == 128
    assert whole.train.epochs == paper.train.epochs  # the paper recipe's 20
    assert get_config("thumbs_whole").train.epochs == 9  # the CPU budget at the measured speed (config comment)


def test_r512_variant_samples_the_paper_patches_within_the_budget():
    """Issue 17: the paper's crop, CLAHE and 49 patches of 128 px at 512; only the sampling per epoch,
    the epochs and the batch-norm momentum (as thumbs) change."""
    paper, r512 = get_config(), get_config("r512")
    assert changed_keys(paper, r512) == {"train.patches_per_image", "train.epochs", "train.max_minutes", "model.bn_momentum",
                                         "train.init_from_forbidden"}
    assert (r512.data.image_size, r512.data.patch_size, r512.data.patch_grid) == (512, 128, 7)
    assert r512.data.clahe == paper.data.clahe and r512.data.hand_crop == paper.data.hand_crop
    assert 1 <= r512.train.patches_per_image < 49  # a random subset per radiograph and epoch, as thumbs
    assert r512.model.bn_momentum == get_config("thumbs").model.bn_momentum  # as the run it starts from
    assert r512.train.epochs <= 14  # the budget rule's cap


def test_r512_fromthumbs_is_r512_started_from_the_thumbs_run():
    """The init arm of "what does the thumbnail run buy at 512 px?": r512 and nothing else but the
    demand for --init-from, so the pair differs in the initial weights alone."""
    assert changed_keys(get_config("r512"), get_config("r512_fromthumbs")) == {"train.init_from_required",
                                                                            "train.init_from_forbidden"}
    assert get_config("r512_fromthumbs").train.init_from_required is True
    assert not get_config("r512_fromthumbs").train.get("init_from_forbidden")
    assert get_config("r512").train.init_from_forbidden is True and not get_config("r512").train.get("init_from_required")


def test_unknown_variant_and_override():
    with pytest.raises(ValueError, match="Received: variant='tiny'"):
        get_config("tiny")
    assert get_config().apply_overrides(["model.sex=female"]).model.sex == "female"
    with pytest.raises(KeyError):
        get_config().override("model.gender", "female")


def test_every_value_has_a_source_comment():
    missing = values_without_source(config_module.get_config, (
        "seed description", "reconstructed", "kit choice", "thumbs:", "small:", "whole:", "the reproduction's",
        "r512:", "fromthumbs:"))
    assert not missing, f"values without a source comment: {missing}"
