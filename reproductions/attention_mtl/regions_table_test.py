"""The attention-by-region table beside iglovikov18's region networks, from run records."""
from common import results
from reproductions.attention_mtl import regions_table


def _attention_record(dataset="folder/rsna-512", split="test", with_regions=True):
    columns = ["on_radiograph", "in_hand_mask", "off_hand"] + (
        ["region_carpal", "region_metacarpal", "region_rest_of_hand"] if with_regions else [])
    shares = {"on_radiograph": 0.95, "area_on_radiograph": 0.80, "in_hand_mask": 0.534, "area_in_hand_mask": 0.179,
              "off_hand": 0.416, "area_off_hand": 0.621,
              "region_carpal": 0.2475, "area_region_carpal": 0.045, "region_metacarpal": 0.30,
              "area_region_metacarpal": 0.096, "region_rest_of_hand": 0.068, "area_region_rest_of_hand": 0.052}
    attention = {"columns": columns, "all": shares, "images": 89, "regions_images": 85}
    return {"paper": "attention_mtl", "variant": "r512_fromthumbs", "_dir": "attention_mtl/run",
            "evaluations": {split: {"dataset": dataset, "extra_metrics": {"attention": attention}}}}


def _cell(value):
    return {"all": {"value": value, "ci_low": value - 2, "ci_high": value + 2}}


def test_the_table_puts_the_attention_beside_the_region_networks_on_the_same_images():
    ig = {("folder/rsna-512-registered-r512-400px", "r512", "test"): {("classify", "hand"): _cell(12.74),
                                                                      ("regress", "hand"): _cell(16.27)},
          ("folder/rsna-thumbs100-registered-thumbs-83px", "thumbs", "test"): {("regress", "carpal"): _cell(16.45)}}
    text = regions_table.render([_attention_record(), {"paper": "larson18", "evaluations": {}}], ig)
    assert "**folder/rsna-512**, test split" in text and "iglovikov18 `r512` networks" in text
    hand = next(line for line in text.splitlines() if line.startswith("| whole hand"))
    assert "53.4 % (17.9 %)" in hand and "16.27 [14.27, 18.27]" in hand and "12.74 [10.74, 14.74]" in hand
    carpal = next(line for line in text.splitlines() if line.startswith("| carpal box"))
    assert "24.8 % (4.5 %)" in carpal and carpal.endswith("| — | — |")  # no r512 carpal network: not the thumbnails'
    off = next(line for line in text.splitlines() if line.startswith("| on the radiograph, off the hand"))
    assert "41.6 % (62.1 %)" in off
    assert "85 images with regions" in text


def test_an_evaluation_on_other_data_meets_iglovikov18s_on_the_same_data():
    record = _attention_record(dataset="folder/rsna-sample", split="test-on-folder-rsna-sample")
    record["evaluations"]["test-on-folder-rsna-sample"]["split"] = "test"
    ig = {("folder/rsna-sample-registered-r512-400px", "r512", "test"):  # regions.collect: by the evaluation's split
          {("classify", "hand"): _cell(11.5), ("regress", "hand"): {"all": {"value": None}}}}
    text = regions_table.render([record], ig)
    assert "**folder/rsna-sample**, test split" in text and "iglovikov18 `r512` networks" in text
    hand = next(line for line in text.splitlines() if line.startswith("| whole hand"))
    assert hand.endswith("| — | 11.50 [9.50, 13.50] |")  # a missing MAE prints as missing
    assert "attention_mtl/run/test-on-folder-rsna-sample/attention_regions.md" in text


def test_evaluations_without_the_chains_regions_are_left_out():
    assert "No attention_mtl evaluation" in regions_table.render([_attention_record(with_regions=False)], {})
    text = regions_table.render([_attention_record(dataset="folder/other")], {})
    assert "no iglovikov18 run on these images yet" in text and "iglovikov18 regression" not in text


def test_regenerate_writes_the_page_and_leaves_the_readme_of_other_results_alone(tmp_path):
    (tmp_path / "attention_mtl").mkdir()
    written = regions_table.regenerate(tmp_path, log=lambda *_: None)
    assert written == [tmp_path / "attention_mtl" / "regions.md"]  # not the README: these are not the repository's
    assert written[0].read_text().startswith(regions_table.HEADER)
    assert regions_table.BEGIN in (regions_table.HERE / "README.md").read_text()
    assert results.RESULTS_DIR != tmp_path
