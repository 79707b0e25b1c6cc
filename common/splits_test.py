from common import splits


def test_rule_is_stable_and_spreads_ids():
    ids = [str(i) for i in range(1377, 1377 + 5000)]
    first = [splits.folder_split(i) for i in ids]
    assert first == [splits.folder_split(i) for i in ids]  # stable across calls
    shares = {s: first.count(s) / len(ids) for s in ("train", "validation", "test")}
    assert abs(shares["test"] - 0.10) < 0.02 and abs(shares["validation"] - 0.10) < 0.02
    # Pinned values: a change of the rule would silently reshuffle every published split.
    assert round(splits.unit_hash("1377"), 6) == 0.804238
    assert round(splits.unit_hash("4360"), 6) == 0.14415
    assert [splits.folder_split(i) for i in ("1377", "4360")] == ["train", "validation"]


def test_carved_validation_fraction():
    ids = [str(i) for i in range(10000)]
    share = sum(map(splits.carved_validation, ids)) / len(ids)
    assert abs(share - splits.RSNA_CARVED_VALIDATION_FRACTION) < 0.02
