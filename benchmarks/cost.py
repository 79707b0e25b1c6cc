"""What a full reproduction of each paper costs, computed from the measured training-step speeds.

    python benchmarks/cost.py      # after benchmarks/train_step.py (on a CPU and, when lent, a GPU)

For every network a paper trains, at the paper's own config (its resolution, epochs and rows per
epoch on the full RSNA training split of 12,611 radiographs), hours = rows x epochs / (measured
train images/s at the paper size). The speeds come from results/benchmarks/train_step_<device>.json
(random inputs: the step's own speed; the input pipeline is not in it, see input_pipeline.md).
Counted: one training round per network, training steps only, at the benchmark's batch (not each
paper's); validation passes, evaluation, data preparation, iglovikov18's phantom pre-training,
mask-refinement rounds and its `register` inference add to it.
A device or dtype policy without a measurement is shown as not measured, never estimated.
Writes results/benchmarks/cost.md.
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

RSNA_TRAIN = 12611  # the challenge's training split (common/datasets/rsna.py, OFFICIAL_COUNTS)


IGLOVIKOV18_NAMES = {"segment": "U-Net", "keypoints": "key points"}  # the age networks: "<stage>, <region>"


def networks():
    """paper -> [(network, train_step model key, rows per epoch, epochs, config variant)] at the paper's config;
    iglovikov18's networks are those of its chain (train_step.iglovikov18_networks: variants.Variant)."""
    from reproductions.iglovikov18.config import get_config as iglovikov
    from reproductions.larson18.config import get_config as larson
    from reproductions.rsna17_second.config import get_config as second
    from reproductions.rsna17_winner.config import get_config as winner
    from train_step import iglovikov18_networks
    s = second()
    return {
        "larson18": [("ResNet-50 classifier", "larson18", RSNA_TRAIN, larson().train.epochs, "")],
        "rsna17_winner": [("InceptionV3 + sex", "rsna17_winner", RSNA_TRAIN, winner().train.epochs, "")],
        # one model per sex: together they see every radiograph's patches once per epoch
        "rsna17_second": [(f"ResNet-50 on {s.train.patches_per_image} patches per radiograph, both sexes",
                           "rsna17_second", RSNA_TRAIN * s.train.patches_per_image, s.train.epochs, "")],
        "iglovikov18": [(IGLOVIKOV18_NAMES.get(v.stage, f"{v.stage}, {v.region}"), key, RSNA_TRAIN,
                         iglovikov(v.name).train.epochs, v.name) for key, v in iglovikov18_networks().items()],
    }


def load(tag, directory):
    path = Path(directory) / f"train_step_{tag}.json"
    return json.loads(path.read_text()) if path.exists() else None


def speeds(record):
    """(model, policy) -> images/s at the paper size (the larger of a model's two sizes)."""
    if record is None:
        return {}
    from train_step import MODELS
    return {(r["model"], r["policy"]): r["images_per_s"] for r in record["rows"]
            if r["model"] in MODELS and r["size"] == MODELS[r["model"]][2]}


def hours(nets, speed, policy):
    total = 0.0
    for _, key, rows, epochs, _ in nets:
        s = speed.get((key, policy))
        if not s:
            return None
        total += rows * epochs / s / 3600
    return total


# What the hours above assume of the input pipeline when they are divided between N GPUs.
SCALING_NOTE = (
    'Scaling to N GPUs (`train --num-processes`, `--devices`; README "Several machines"): the hours above'
    ' divide by N only if the input pipeline keeps up. Every process decodes and preprocesses its own '
    "part of each global batch, so each machine's pipeline must deliver (its devices) x (one device's "
    'training images/s) images/s: `results/benchmarks/train_step_<device>.md` gives the ratio of pipeline'
    ' to training-step images/s per model, which must stay above 1 per device on every machine, with the '
    'decoding cores split between the devices it feeds. A split is read by file only when its TFRecord '
    'file count is a multiple of the process count (TFDS writes files of up to 1 GiB by default: a split '
    'smaller than that is one file, and N processes fall back to every N-th example, and each process '
    'then reads, though it does not decode, the whole split: N times the disk reads); rebuilding a '
    'dataset with a file count that divides by N avoids it. Each process reads the whole validation split'
    ' and every device computes it whole, so validation time does not shrink with N. One step also waits '
    'for the gradient exchange between processes, whose cost `benchmarks/processes.py` measures (1 vs N '
    'processes on one machine, as a ratio; not yet run on a free machine, so no number is given here).')


def main(argv=None):
    import argparse

    from common import io, provenance
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=str(ROOT / "results" / "benchmarks"),
                   help="where train_step_<device>.json are read and cost.md is written")
    args = p.parse_args(argv)
    nets = networks()
    devices = [(tag, load(tag, args.dir)) for tag in ("gpu", "cpu")]
    lines = ["# Cost of a full reproduction (training steps, paper configs, full RSNA training split)", "",
             "Generated by `python benchmarks/cost.py` from the measured training-step speeds "
             "(`train_step_<device>.json`; random inputs, batch as recorded there): hours = rows per epoch x epochs "
             "/ measured train images/s at the paper's resolution, summed over the paper's networks (one training round "
             "each, at the benchmark's batch). Validation, evaluation, data preparation and iglovikov18's extra rounds "
             "(phantom pre-training, mask refinement, `register` inference) are not included.", ""]
    for tag, record in devices:
        if record is None:
            lines += [f"- {tag.upper()}: not measured (no `results/benchmarks/train_step_{tag}.json`"
                      + ("; no GPU was lent when these benchmarks ran" if tag == "gpu" else "") + ")"]
        else:
            lines += [f"- {tag.upper()}: {record['device']}, Keras backend {record['backend']}, batch "
                      f"{record['batch_size']}, commit `{record['commit'][:10]}`, {record['when']}"]
    lines += ["", f"Generated {provenance.now()} at commit `{provenance.git_commit()['commit'][:10]}`.", ""]
    policies = ("float32", "mixed_float16", "mixed_bfloat16")
    header = ["paper", "networks (rows per epoch x epochs)"]
    for tag, record in devices:
        if record is not None:
            header += [f"{tag.upper()} hours, {p}" for p in policies]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for paper, paper_nets in nets.items():
        desc = "; ".join(f"{name}: {rows:,} x {epochs}" for name, _, rows, epochs, _ in paper_nets)
        cells = [f"`{paper}`", desc]
        for tag, record in devices:
            if record is None:
                continue
            speed = speeds(record)
            for policy in policies:
                h = hours(paper_nets, speed, policy)
                cells.append(f"{h:,.1f}" if h is not None else "not measured")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", SCALING_NOTE]
    text = "\n".join(lines) + "\n"
    io.atomic_write_text(Path(args.dir) / "cost.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
