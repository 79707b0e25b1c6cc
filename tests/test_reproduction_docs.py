"""Every reproduction documents itself the same way: paper numbers with their source, a README
with the required sections and a generated results block."""
import json
import re
from pathlib import Path

import pytest

REPRODUCTIONS = Path(__file__).resolve().parents[1] / "reproductions"
PACKAGES = sorted(p.name for p in REPRODUCTIONS.iterdir() if (p / "__main__.py").exists())
# A package without paper numbers is one of this kit's own methods: no paper to compare with, and
# its README must say so (tables never show a kit method as a paper).
PAPERS = [p for p in PACKAGES if (REPRODUCTIONS / p / "paper_numbers.json").exists()]
KIT_METHODS = [p for p in PACKAGES if p not in PAPERS]


def test_the_four_papers_are_found():
    assert {"larson18", "rsna17_winner"} <= set(PAPERS)


@pytest.mark.parametrize("paper", PAPERS)
def test_paper_numbers_say_where_they_come_from(paper):
    numbers = json.loads((REPRODUCTIONS / paper / "paper_numbers.json").read_text())
    assert numbers["paper"] == paper and numbers["doi"] and numbers["citation"] and numbers["short_citation"]
    assert numbers["numbers"]
    for entry in numbers["numbers"]:
        assert {"id", "metric", "value", "unit", "value_months", "where", "test_set",
                "verified_in_session"} <= entry.keys(), entry
        factor = {"years": 12, "months": 1}[entry["unit"]]
        assert abs(entry["value_months"] - factor * entry["value"]) < 1e-9, entry["id"]
    ids = [e["id"] for e in numbers["numbers"]]
    assert len(ids) == len(set(ids))
    assert sum(bool(e.get("headline")) for e in numbers["numbers"]) == 1


@pytest.mark.parametrize("paper", PAPERS)
def test_readme_has_the_required_sections_and_a_results_block(paper):
    text = (REPRODUCTIONS / paper / "README.md").read_text()
    for heading in ("## Paper", "## Paper vs this code", "## Deviations and reconstructed values", "## Results"):
        assert heading in text, heading
    assert re.search(r"<!-- results:begin -->\n(.*?)<!-- results:end -->", text, re.S)


@pytest.mark.parametrize("method", KIT_METHODS)
def test_a_kit_method_says_it_is_not_a_paper_and_documents_its_choices(method):
    text = (REPRODUCTIONS / method / "README.md").read_text()
    assert "this kit's method, not a paper" in text.lower()
    for heading in ("## Method", "## Choices and their reasons", "## Results"):
        assert heading in text, heading
    assert re.search(r"<!-- results:begin -->\n(.*?)<!-- results:end -->", text, re.S)
    task = __import__(f"reproductions.{method}.task", fromlist=["TASK"]).TASK
    assert "not a paper" in task.citation
