"""The variants of the iglovikov18 chain, typed: which base setting, which network, which region.

A variant names one network of the chain (or the ensemble of the age networks) as `--variant`
values, run records and run-directory names spell it: "[base-]stage[-region]", e.g. "segment",
"small-keypoints", "thumbs-regress-carpal", "r512-classify-hand", "thumbs-ensemble". Modules
build and read them with `Variant`, never by joining, splitting or replacing strings:

    Variant("thumbs", "regress", "carpal").name        -> "thumbs-regress-carpal"
    Variant.parse("small-classify-hand")               -> Variant(base="small", stage="classify", region="hand")
    Variant.parse("thumbs-segment").with_stage("regress", "hand").name  -> "thumbs-regress-hand"
    Variant.parse("thumbs-regress-hand").ensemble().name                -> "thumbs-ensemble"
    Variant.parse("regress-carpal").with_base("thumbs").name             -> "thumbs-regress-carpal"
"""
from __future__ import annotations

import dataclasses

BASES = ("", "small", "thumbs", "r512", "r512scratch")  # "" is the paper's setting (config.py says what each changes)
# A base that is another base's networks and settings started from random weights, never from another run
# (train refuses --init-from for it): the random-start arm of "what does the thumbnail run buy at 512 px?".
RANDOM_START = {"r512scratch": "r512"}
STAGES = ("segment", "keypoints", "regress", "classify")  # the networks of the chain, in training order
AGE_STAGES = ("regress", "classify")  # the age networks: one per region
REGIONS = ("hand", "carpal", "metacarpal")
ENSEMBLE = "ensemble"  # not a network: the mean of the age networks of a base (ensemble.py)

FORM = (f"[small-|thumbs-|r512-|r512scratch-]<stage>[-<region>] with stage in {STAGES} and region in {REGIONS} for "
        f"{AGE_STAGES} (none for the others), or [small-|thumbs-|r512-|r512scratch-]{ENSEMBLE}")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One network of the chain, or the ensemble of a base's age networks.

    Args:
        base: str. One of BASES: "" (the paper's setting), "small", "thumbs", "r512", "r512scratch"
            (r512 from random weights).
        stage: str. One of STAGES, or ENSEMBLE.
        region: str or None. One of REGIONS for the age stages (regress, classify); None otherwise.
    """
    base: str
    stage: str
    region: str | None = None

    def __post_init__(self):
        if self.base not in BASES:
            raise ValueError(f"Unknown base variant; expected one of {BASES}. Received: base={self.base!r}")
        if self.stage not in STAGES + (ENSEMBLE,):
            raise ValueError(f"Unknown stage; expected one of {STAGES + (ENSEMBLE,)}. Received: stage={self.stage!r}")
        if (self.stage in AGE_STAGES) != (self.region is not None):
            raise ValueError(f"Stages {AGE_STAGES} need a region {REGIONS} and the others none. "
                             f"Received: stage={self.stage!r}, region={self.region!r}")
        if self.region is not None and self.region not in REGIONS:
            raise ValueError(f"Unknown region; expected one of {REGIONS}. Received: region={self.region!r}")
        if self.base in RANDOM_START and self.stage not in AGE_STAGES + (ENSEMBLE,):
            raise ValueError(f"{self.base!r} names {RANDOM_START[self.base]}'s age networks from random weights; its "
                             f"U-Net, key points and registered canvases are {RANDOM_START[self.base]}'s. "
                             f"Received: base={self.base!r}, stage={self.stage!r}")

    @property
    def name(self) -> str:
        """The variant string: "[base-]stage[-region]" ("thumbs-regress-carpal", "segment", "small-ensemble")."""
        return "-".join(p for p in (self.base, self.stage, self.region) if p)

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, variant: str) -> Variant:
        """The Variant a variant string names; ValueError naming the expected form if it names none.

        "small-regress-carpal" -> Variant("small", "regress", "carpal"); "segment" -> Variant("", "segment").
        """
        parts = variant.split("-") if isinstance(variant, str) and variant else []
        base = parts.pop(0) if len(parts) > 1 and parts[0] in BASES[1:] else ""
        stage = parts.pop(0) if parts and parts[0] in STAGES + (ENSEMBLE,) else None
        region = parts.pop(0) if stage in AGE_STAGES and parts and parts[0] in REGIONS else None
        if stage is None or parts or (stage in AGE_STAGES and region is None):
            raise ValueError(f"Unknown iglovikov18 variant; expected {FORM}. Received: variant={variant!r}")
        return cls(base, stage, region)

    @property
    def is_age(self) -> bool:
        """An age network (regress or classify, on one region)."""
        return self.stage in AGE_STAGES

    def with_stage(self, stage: str, region: str | None = None) -> Variant:
        """The variant of another network of the same base ("thumbs-segment" -> "thumbs-regress-hand")."""
        return Variant(self.base, stage, region)

    def with_base(self, base: str) -> Variant:
        """The same network in another base setting ("regress-carpal" -> "thumbs-regress-carpal")."""
        return Variant(base, self.stage, self.region)

    def ensemble(self) -> Variant:
        """The ensemble of this base's age networks ("thumbs-regress-hand" -> "thumbs-ensemble")."""
        return Variant(self.base, ENSEMBLE)

    @classmethod
    def age_networks(cls, base: str) -> tuple[Variant, ...]:
        """The six age networks of a base (3 regions x 2 heads), region by region."""
        return tuple(cls(base, stage, region) for region in REGIONS for stage in AGE_STAGES)

    @classmethod
    def all(cls, stages=STAGES) -> tuple[Variant, ...]:
        """Every network of `stages` (STAGES, no ensemble) of every base, base by base (a RANDOM_START base:
        its age networks only)."""
        return tuple(cls(base, stage, region) for base in BASES for stage in stages
                     if base not in RANDOM_START or stage in AGE_STAGES
                     for region in (REGIONS if stage in AGE_STAGES else (None,)))
