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


def test_every_ablation_run_and_command_names_a_variant_its_paper_has():
    """A pair or a command with a misspelt or renamed variant would sit in `compare` as "not run yet"
    forever, and its command would fail when a reader runs it."""
    import importlib
    import re
    for ab in registry.ablations():
        named = [ab["a"], ab["b"]]
        for command in ab["commands"]:
            m = re.search(r"-m reproductions\.(\w+) train .*--variant (\S+)", command)
            if m:  # iglovikov18 names its network by --stage and --region beside the base variant
                stage_region = re.findall(r"--(?:stage|region) (\S+)", command)
                named.append((m.group(1), "-".join([m.group(2), *stage_region])))
        for paper, variant in named:
            if paper == "iglovikov18":  # its ensemble is a run without a config: the variant string is checked
                importlib.import_module("reproductions.iglovikov18.variants").Variant.parse(variant)
            else:
                importlib.import_module(f"reproductions.{paper}.config").get_config(variant)  # raises on a variant it lacks
