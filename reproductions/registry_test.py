"""The paper registry names every reproduction package and hands out the ablations."""
from pathlib import Path

from reproductions import ablations as ablations_module
from reproductions import registry

HERE = Path(__file__).resolve().parent


def test_papers_are_the_runnable_packages():
    packages = sorted(p.name for p in HERE.iterdir() if (p / "__main__.py").is_file() and (p / "task.py").is_file())
    assert list(registry.PAPERS) == packages


def test_ablations_are_read_when_called_and_name_registered_papers(monkeypatch):
    assert registry.ablations() == tuple(ablations_module.ABLATIONS)
    for ab in registry.ablations():
        assert {ab["a"][0], ab["b"][0]} <= set(registry.PAPERS), ab["question"]
    monkeypatch.setattr(ablations_module, "ABLATIONS", ({"question": "q"},))
    assert registry.ablations() == ({"question": "q"},)
