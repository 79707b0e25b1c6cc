"""Checks on the hand-written paper numbers and the README's generated-results block."""
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_paper_numbers_say_where_they_come_from():
    numbers = json.loads((HERE / "paper_numbers.json").read_text())
    assert numbers["doi"] == "10.1148/radiol.2017170236"
    assert numbers["numbers"]
    for entry in numbers["numbers"]:
        assert {"id", "metric", "value", "unit", "where", "test_set"} <= entry.keys(), entry
        if entry["unit"] == "years":
            assert abs(entry["value_months"] - 12 * entry["value"]) < 1e-9, entry["id"]
    ids = [e["id"] for e in numbers["numbers"]]
    assert len(ids) == len(set(ids))


def test_readme_has_an_empty_results_block_and_the_required_sections():
    text = (HERE / "README.md").read_text()
    for heading in ("## Paper", "## Paper vs this code", "## Deviations and reconstructed values"):
        assert heading in text
    block = re.search(r"<!-- results:begin -->\n(.*?)<!-- results:end -->", text, re.S)
    assert block is not None
