"""Checks on the hand-written paper numbers, the README's sections and its generated parts."""
import json
import re
from pathlib import Path

from common.provenance import REPO_ROOT

HERE = Path(__file__).resolve().parent


def test_paper_numbers_say_where_they_come_from():
    numbers = json.loads((HERE / "paper_numbers.json").read_text())
    assert numbers["doi"] == "10.1148/radiol.2018180736"
    headline = [e for e in numbers["numbers"] if e.get("headline")]
    assert len(headline) == 1 and headline[0]["value_months"] == 4.4 and headline[0]["unit"] == "months"
    for entry in numbers["numbers"]:
        assert {"id", "metric", "value", "unit", "where", "test_set", "verified_in_session"} <= entry.keys(), entry
    ids = [e["id"] for e in numbers["numbers"]]
    assert len(ids) == len(set(ids))


def test_readme_has_the_required_sections_a_results_block_and_the_figure():
    text = (HERE / "README.md").read_text()
    for heading in ("## Paper", "## Paper vs this code", "## Deviations and reconstructed values", "## Commands"):
        assert heading in text
    assert re.search(r"<!-- results:begin -->\n(.*?)<!-- results:end -->", text, re.S) is not None
    figure = re.search(r"\]\((\.\./\.\./results/rsna17_second/patch_grid\.png)\)", text)
    assert figure is not None and (REPO_ROOT / "results" / "rsna17_second" / "patch_grid.png").stat().st_size > 0
