"""Checks on the hand-written paper numbers, the README's generated blocks, and the region table."""
import json
import re
from pathlib import Path

from reproductions.iglovikov18 import regions
from reproductions.iglovikov18.variants import Variant

HERE = Path(__file__).resolve().parent


def test_paper_numbers_say_where_they_come_from():
    numbers = json.loads((HERE / "paper_numbers.json").read_text())
    assert numbers["arxiv"] == "1712.05053" and numbers["doi"] == "10.1007/978-3-030-00889-5_34"
    assert numbers["numbers"]
    for entry in numbers["numbers"]:
        assert {"id", "metric", "value", "unit", "value_months", "where", "test_set", "verified_in_session"} <= entry.keys()
        key = entry.get("table_key")
        if key:
            assert key["kind"] in ("regress", "classify", "ensemble") and key.get("sex", "all") in ("all", "female", "male")
    ids = [e["id"] for e in numbers["numbers"]]
    assert len(ids) == len(set(ids))


def test_readme_has_the_sections_and_the_generated_blocks():
    text = (HERE / "README.md").read_text()
    for heading in ("## Paper", "## Paper vs this code", "## Deviations and reconstructed values", "## Commands"):
        assert heading in text
    for begin, end in (("<!-- results:begin -->", "<!-- results:end -->"), (regions.BEGIN, regions.END)):
        assert re.search(re.escape(begin) + r"\n(.*?)" + re.escape(end), text, re.S), begin


def _cell(value):
    return {"value": value, "ci_low": value - 1, "ci_high": value + 1}


def test_region_table_puts_each_run_in_its_row_beside_the_paper(tmp_path):
    collected = {("phantoms/small", "small", "test"): {
        ("regress", "carpal"): {"all": _cell(20.0), "female": _cell(19.0), "male": _cell(21.0), "n": 10, "n_female": 4,
                                "n_male": 6, "run": "a/test/metrics.md", "estimate": "regression"},
        ("ensemble", None): {"all": _cell(10.0), "female": _cell(9.0), "male": _cell(11.0), "n": 10, "n_female": 4,
                             "n_male": 6, "run": "e/test/metrics.md", "estimate": "ensemble"}}}
    numbers = json.loads((HERE / "paper_numbers.json").read_text())
    table = regions.render(collected, numbers, link_prefix="../")
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert rows[0].startswith("| carpal bones | regression | **20.00 [19.00, 21.00]** | 19.00 [18.00, 20.00]")
    assert rows[1].startswith("| ensemble") and "6.10 / — / —" in rows[1]
    assert "(../a/test/metrics.md)" in rows[0]
    assert regions.parse_run_variant("small-classify-hand") == Variant("small", "classify", "hand")
    assert regions.parse_run_variant("thumbs-ensemble") == Variant("thumbs", "ensemble", None)
    assert regions.parse_run_variant("small-segment") is None
    regions.regenerate(results_dir=tmp_path, log=lambda *_: None)      # no runs: still a valid file
    assert "No evaluated iglovikov18 age runs yet." in (tmp_path / "iglovikov18" / "regions.md").read_text()


def test_collect_keys_each_evaluation_by_its_own_data_and_split(tmp_path, monkeypatch):
    """An evaluation on other data (stored as "test-on-<dataset>") is that dataset's test split, and its cell links
    to its own folder: the attention_mtl region table meets it by (dataset, split)."""
    metrics = {"overall": {"mae": _cell(12.0)}, "n": 16,
               "by_sex": {s: {"metrics": {"mae": _cell(12.0)}, "n": 8} for s in ("female", "male")}}
    run = "iglovikov18/folder-a-registered_r512-classify-hand_400px"
    for folder in ("test", "test-on-folder-b-registered"):
        (tmp_path / run / folder).mkdir(parents=True)
        (tmp_path / run / folder / "metrics.json").write_text(json.dumps(metrics))
    record = {"paper": "iglovikov18", "variant": "r512-classify-hand", "_dir": run, "evaluations": {
        "test": {"split": "test", "dataset": "folder/a-registered"},
        "test-on-folder-b-registered": {"split": "test", "dataset": "folder/b-registered"}}}
    # A second run of the same network, trained on b: its own test split meets the first run's evaluation on b
    other = "iglovikov18/folder-b-registered_r512-classify-hand_400px"
    (tmp_path / other / "test").mkdir(parents=True)
    (tmp_path / other / "test" / "metrics.json").write_text(json.dumps(metrics))
    own = {"paper": "iglovikov18", "variant": "r512-classify-hand", "_dir": other,
           "evaluations": {"test": {"split": "test", "dataset": "folder/b-registered"}}}
    monkeypatch.setattr(regions.results, "load_runs", lambda results_dir: [record])
    collected = regions.collect(tmp_path)
    assert set(collected) == {("folder/a-registered", "r512", "test"), ("folder/b-registered", "r512", "test")}
    cell = collected[("folder/b-registered", "r512", "test")][("classify", "hand")]
    assert cell["run"] == f"{run}/test-on-folder-b-registered/metrics.md" and cell["n"] == 16
    for order in ([record, own], [own, record]):  # the run on its own data wins, whichever is read first
        monkeypatch.setattr(regions.results, "load_runs", lambda results_dir, order=order: order)
        cell = regions.collect(tmp_path)[("folder/b-registered", "r512", "test")][("classify", "hand")]
        assert cell["run"] == f"{other}/test/metrics.md"
