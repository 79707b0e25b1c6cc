"""Tests for the typed iglovikov18 variants: names, parsing, helpers."""
import dataclasses

import pytest

from reproductions.iglovikov18.variants import AGE_STAGES, BASES, ENSEMBLE, REGIONS, STAGES, Variant

KNOWN = Variant.all() + tuple(Variant(base, ENSEMBLE) for base in BASES)


def test_variant_names_round_trip_and_bad_ones_are_refused():
    for base in BASES:
        for stage in (AGE_STAGES if base == "r512scratch" else STAGES):
            for region in (REGIONS if stage in AGE_STAGES else (None,)):
                v = Variant.parse(Variant(base, stage, region).name)
                assert (v.base, v.stage, v.region) == (base, stage, region)
    for bad in ("", "small", "regress", "small-regress-wrist", "segment-hand", "tiny-segment", "regress-hand-x"):
        with pytest.raises(ValueError, match="Received|variant"):
            Variant.parse(bad)
    with pytest.raises(ValueError, match="region"):
        Variant("", "regress")


@pytest.mark.parametrize("variant", KNOWN, ids=lambda v: v.name or "?")
def test_every_known_variant_round_trips(variant):
    assert Variant.parse(variant.name) == variant and str(variant) == variant.name


def test_the_names_on_disk_are_unchanged():
    """Run directories, run records and `--variant` values spell them so: they must not change."""
    assert len(Variant.all()) == 4 * 8 + 6  # r512scratch: the six age networks only and len(set(v.name for v in KNOWN)) == len(KNOWN)
    assert [v.name for v in Variant.all() if not v.base] == [
        "segment", "keypoints", "regress-hand", "regress-carpal", "regress-metacarpal",
        "classify-hand", "classify-carpal", "classify-metacarpal"]
    assert Variant("thumbs", "regress", "carpal").name == "thumbs-regress-carpal"
    assert Variant("r512", "keypoints").name == "r512-keypoints"
    assert [Variant(b, ENSEMBLE).name for b in BASES] == ["ensemble", "small-ensemble", "thumbs-ensemble",
                                                          "r512-ensemble", "r512scratch-ensemble"]
    assert [v.name for v in Variant.age_networks("small")] == [
        "small-regress-hand", "small-classify-hand", "small-regress-carpal", "small-classify-carpal",
        "small-regress-metacarpal", "small-classify-metacarpal"]


@pytest.mark.parametrize("bad", ["", "small", "thumbs-", "-segment", "small-small-segment", "paper-segment",
                                 "segment-hand", "keypoints-carpal", "regress", "small-classify",
                                 "thumbs-regress-wrist", "regress-hand-x", "ensemble-hand", "small-ensemble-x",
                                 "Thumbs-segment", "small_regress_hand", None, 3])
def test_malformed_or_unknown_variants_are_refused_naming_the_form(bad):
    with pytest.raises(ValueError) as e:
        Variant.parse(bad)
    message = str(e.value)
    assert "expected [small-|thumbs-|r512-|r512scratch-]<stage>[-<region>]" in message and f"Received: variant={bad!r}" in message
    for word in STAGES + REGIONS + (ENSEMBLE,):
        assert word in message


@pytest.mark.parametrize("fields, message", [
    (("huge", "segment", None), "Unknown base variant.*Received: base='huge'"),
    (("", "train", None), "Unknown stage.*Received: stage='train'"),
    (("", "segment", "hand"), "need a region.*Received: stage='segment', region='hand'"),
    (("", "ensemble", "hand"), "need a region"),
    (("", "classify", None), "need a region"),
    (("", "classify", "wrist"), "Unknown region.*Received: region='wrist'"),
])
def test_a_variant_that_names_no_network_cannot_be_built(fields, message):
    with pytest.raises(ValueError, match=message):
        Variant(*fields)


def test_helpers_keep_the_base():
    segment = Variant.parse("thumbs-segment")
    assert segment.with_stage("regress", "hand") == Variant("thumbs", "regress", "hand")
    assert segment.with_stage("regress", "hand").name == "thumbs-regress-hand"
    assert Variant.parse("regress-hand").ensemble().name == "ensemble"
    assert Variant.parse("small-classify-carpal").ensemble() == Variant("small", ENSEMBLE)
    assert Variant("small", "regress", "hand").is_age and not Variant("small", "segment").is_age
    assert not Variant("small", ENSEMBLE).is_age
    with pytest.raises(ValueError, match="need a region"):
        segment.with_stage("classify")
    with pytest.raises(dataclasses.FrozenInstanceError):
        segment.stage = "keypoints"
    assert len({Variant("", "segment"), Variant.parse("segment")}) == 1  # hashable, equal by value


def test_with_base_names_the_same_network_in_another_setting():
    assert Variant.parse("regress-carpal").with_base("thumbs") == Variant("thumbs", "regress", "carpal")
    assert Variant.parse("small-segment").with_base("").name == "segment"


def test_the_random_start_base_names_age_networks_only():
    """r512scratch's U-Net, key points and canvases are r512's: it has no such networks of its own."""
    for stage in ("segment", "keypoints"):
        with pytest.raises(ValueError, match="age networks from random weights"):
            Variant("r512scratch", stage)
    assert Variant.parse("r512scratch-ensemble") == Variant("r512scratch", ENSEMBLE)
    assert [v.name for v in Variant.all() if v.base == "r512scratch"] == [
        f"r512scratch-{s}-{r}" for s in AGE_STAGES for r in REGIONS]
