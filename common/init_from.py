"""`train --init-from RUN_DIR`: start a run from another run's trained weights, layer by layer.

The use: a network trained on the 100-px thumbnails starts its run on the 512-px radiographs
(issue 17), or a phantom run starts a real one. The two runs are the same paper's network, but
the new one may differ where its input size reaches the weights: rsna17_winner's dense head
reads a 2,048-feature grid at 100 px and a 100,352-feature one at 500 px. So every layer with
weights is matched on its own, and loaded only when its name and the shapes of all its weights
agree; the rest keep their initial weights and are listed, with the reason.

Names are compared without the numeric suffix Keras adds to make automatic names unique
("dense_3" is "dense"): the source model is built in the same process, which shifts those
suffixes. The layers are paired in model order (a sequence alignment of class + name), so two
layers of the same kind keep their places.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
from pathlib import Path

from common.errors import UsageError
from common.runs import WEIGHTS, RunDir  # WEIGHTS: best if validation picked one, else last


@dataclasses.dataclass
class Source:
    run_dir: Path
    weights: Path
    layers: list  # [(path, class name, [numpy arrays])]
    record: dict


def weighted_layers(model, prefix=""):
    """[(path, layer)] of every layer that owns weights, nested models walked into, in model order."""
    out = []
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if getattr(layer, "layers", None):  # a nested model (a backbone): its own layers count one by one
            out += weighted_layers(layer, path + "/")
        elif layer.weights:
            out.append((path, layer))
    return out


def _key(path, class_name):
    return class_name + ":" + "/".join(re.sub(r"_\d+$", "", part) for part in path.split("/"))


def find_source_run(init_from, sub_run: str | None = None) -> Path:
    """The run directory to start from: RUN_DIR itself, or, for a run made of sub-runs (rsna17_second
    trains one network per sex in <run>/<sex>/), its sub-run of the same name as this one's."""
    run_dir = Path(init_from).expanduser()
    if not run_dir.is_dir():
        raise UsageError(f"--init-from {init_from}: no such run directory")
    if sub_run and (run_dir / sub_run / "config.json").is_file():  # before RUN_DIR's own: its config is the combined one
        run_dir = run_dir / sub_run
    if not (run_dir / "config.json").is_file():
        raise UsageError(f"--init-from {init_from}: no config.json in it; expected a run directory that `train` wrote")
    return run_dir


def check_source(init_from, config, sub_run=None):
    """(run directory, weights file, config) of the source run, checked without building anything:
    `train` calls it before any data is built. Refuses another paper's run and a run without weights."""
    run_dir = find_source_run(init_from, sub_run)
    source_config = RunDir(run_dir).config()
    if source_config.get("name") != config.get("name"):
        raise UsageError(f"--init-from {run_dir}: a {source_config.get('name')} run; this is a {config.get('name')} "
                         "run, and only the same network's weights can start it")
    if source_config.get("stage") != config.get("stage"):  # a paper of several networks (iglovikov18's chain)
        raise UsageError(f"--init-from {run_dir}: a run of its {source_config.get('stage')!r} network; this run trains "
                         f"its {config.get('stage')!r} network")
    weights = RunDir(run_dir).best_weights()
    if weights is None:
        raise UsageError(f"--init-from {run_dir}: no trained weights ({' or '.join(WEIGHTS)}); train it first "
                         "(weights are never committed: a run from the repository has only its record)")
    return run_dir, weights, source_config


def read_source(init_from, task, config, sub_run=None) -> Source:
    """The trained weights of the source run, layer by layer (the source network is built from its
    own config, at its own input size, and loaded whole)."""
    run_dir, weights, source_config = check_source(init_from, config, sub_run)
    model = task.build_model(source_config)
    model.load_weights(weights)
    layers = [(path, type(layer).__name__, [w.numpy() if hasattr(w, "numpy") else w for w in layer.get_weights()])
              for path, layer in weighted_layers(model)]
    record = RunDir(run_dir).record()
    return Source(run_dir, weights, layers, record)


def load_matching(model, source: Source, log=print, keep_initial=()) -> dict:
    """Copies into `model` every source layer whose name and weight shapes match, except the layers
    named in `keep_initial` (train.init_keep_initial: e.g. a head to start afresh, so that two arms of
    an ablation start alike); returns the report kept in the run record. Refuses when nothing
    matches: that is another network, not a start."""
    target = weighted_layers(model)
    keys_src = [_key(p, c) for p, c, _ in source.layers]
    keys_tgt = [_key(p, type(layer).__name__) for p, layer in target]
    pairs = {}
    for block in difflib.SequenceMatcher(a=keys_tgt, b=keys_src, autojunk=False).get_matching_blocks():
        for i in range(block.size):
            pairs[block.a + i] = block.b + i
    loaded, skipped, n_params = [], [], 0
    for i, (path, layer) in enumerate(target):
        if path in keep_initial:
            skipped.append(f"{path}: kept at its initial weights (train.init_keep_initial)")
            continue
        if i not in pairs:
            skipped.append(f"{path}: not in the source network")
            continue
        arrays = source.layers[pairs[i]][2]
        want = [tuple(w.shape) for w in layer.weights]
        have = [tuple(a.shape) for a in arrays]
        if want != have:
            skipped.append(f"{path}: shapes {have} in the source, {want} here")
            continue
        layer.set_weights(arrays)
        loaded.append(path)
        n_params += sum(int(a.size) for a in arrays)
    if not loaded:
        raise UsageError(f"--init-from {source.run_dir}: none of this network's {len(target)} layers with weights "
                         "matches a layer of that run by name and shape")
    log(f"Initialised from {source.run_dir} ({source.weights.name}): loaded {len(loaded)} of {len(target)} layers "
        f"with weights ({n_params:,} values); skipped {len(skipped)}" + (":" if skipped else "."))
    for line in skipped:
        log(f"  skipped {line}")
    ds = source.record.get("dataset", {})
    return {"run": str(source.run_dir), "weights": source.weights.name, "commit": source.record.get("commit"),
            "dirty": source.record.get("dirty"), "dataset": ds.get("name"), "fingerprint": ds.get("fingerprint"),
            "image_size": source.record.get("image_size"), "variant": source.record.get("variant"),
            "loaded_layers": len(loaded), "layers": len(target), "loaded_values": n_params, "skipped": skipped}
