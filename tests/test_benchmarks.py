"""The cost table is arithmetic on measured speeds: check the arithmetic and that nothing is filled in."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import cost  # noqa: E402


def test_cost_hours_from_measured_speeds_and_not_measured_otherwise(tmp_path):
    rows = [{"model": "larson18", "size": 224, "policy": "float32", "images_per_s": 10.0},
            {"model": "larson18", "size": 64, "policy": "float32", "images_per_s": 1000.0},  # CPU size: not used
            {"model": "rsna17_winner", "size": 500, "policy": "float32", "images_per_s": 5.0}]
    (tmp_path / "train_step_cpu.json").write_text(json.dumps({
        "device": "CPU (2 cores)", "gpus": [], "backend": "tensorflow", "commit": "0" * 40,
        "when": "now", "batch_size": 16, "rows": rows}))
    assert cost.main(["--dir", str(tmp_path)]) == 0
    table = (tmp_path / "cost.md").read_text()
    epochs = cost.networks()["larson18"][0][3]
    larson = next(line for line in table.splitlines() if line.startswith("| `larson18`"))
    assert f"| {cost.RSNA_TRAIN * epochs / 10.0 / 3600:,.1f} | not measured | not measured |" in larson
    # iglovikov18 has networks without a measurement: its total is not measured, not partial
    iglovikov = next(line for line in table.splitlines() if line.startswith("| `iglovikov18`"))
    assert iglovikov.endswith("| not measured | not measured | not measured |")
    assert "GPU: not measured" in table


def test_cost_networks_follow_the_paper_configs():
    from reproductions.rsna17_second.config import get_config
    nets = cost.networks()
    assert set(nets) == {"larson18", "rsna17_winner", "rsna17_second", "iglovikov18"}
    assert nets["rsna17_second"][0][2] == cost.RSNA_TRAIN * get_config().train.patches_per_image
    assert len(nets["iglovikov18"]) == 8  # U-Net, key points, 2 heads x 3 regions
    from train_step import MODELS
    assert all(key in MODELS for paper in nets.values() for _, key, *_ in paper)


def test_every_registered_paper_is_benchmarked_or_says_why_not():
    """The benchmarks loop over the paper registry's iglovikov18 variants and name every paper."""
    from reproductions import registry
    from reproductions.iglovikov18.variants import Variant
    from train_step import MODELS, NOT_BENCHMARKED, iglovikov18_networks
    for paper in registry.PAPERS:
        rows = [key for key in MODELS if key == paper or key.startswith(paper + "_")]
        assert bool(rows) != (paper in NOT_BENCHMARKED), paper
    assert set(NOT_BENCHMARKED) <= set(registry.PAPERS)
    networks = iglovikov18_networks()
    assert list(networks.values()) == [v for v in Variant.all() if v.base == ""]  # the chain, in training order
    assert list(networks) == ["iglovikov18_segment", "iglovikov18_keypoints"] + [
        f"iglovikov18_{stage}_{region}" for stage in ("regress", "classify") for region in ("hand", "carpal", "metacarpal")]
    assert set(networks) <= set(MODELS)
    from reproductions.iglovikov18.config import get_config
    for key, network in networks.items():  # CPU size: the thumbs config's; paper size: the paper config's
        assert MODELS[key][1:] == (get_config(f"thumbs-{network.name}").data.image_size,
                                   get_config(network.name).data.image_size)
    assert [v for _, _, _, _, v in cost.networks()["iglovikov18"]] == [v.name for v in networks.values()]
