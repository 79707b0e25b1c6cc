"""The deterministic split rule used wherever a data source does not define its splits.

An id's place depends only on the id itself (a SHA-256 of it), so it is stable across runs,
machines, library versions and across additions to the data: adding images never moves an
existing image to another split.

- `folder` datasets without a split column: test if u < 0.10, validation if u < 0.20, else
  train (80 / 10 / 10).
- `rsna` without validation images: validation is carved from the training ids with u < 0.10.
Here u = first 8 hex digits of sha256("boneage-repro/" + id) / 16**8, in [0, 1).
"""
import hashlib

SPLIT_RULE = ("u = int(sha256('boneage-repro/' + id)[:8], 16) / 16**8; "
              "folder: test u<0.10, validation 0.10<=u<0.20, train otherwise; "
              "rsna without validation images: validation = training ids with u<0.10")
FOLDER_TEST_FRACTION = 0.10
FOLDER_VALIDATION_FRACTION = 0.10
RSNA_CARVED_VALIDATION_FRACTION = 0.10


def unit_hash(example_id) -> float:
    digest = hashlib.sha256(f"boneage-repro/{example_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 16 ** 8


def folder_split(example_id) -> str:
    u = unit_hash(example_id)
    if u < FOLDER_TEST_FRACTION:
        return "test"
    if u < FOLDER_TEST_FRACTION + FOLDER_VALIDATION_FRACTION:
        return "validation"
    return "train"


def carved_validation(example_id) -> bool:
    return unit_hash(example_id) < RSNA_CARVED_VALIDATION_FRACTION
