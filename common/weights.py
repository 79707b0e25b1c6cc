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
        backbone.load_weights(path, skip_mismatch=False) if path.name.endswith(".weights.h5") \
            else backbone.load_weights(path)
    except Exception as e:
        raise WeightsError(f"--weights {path}: could not load into {backbone.name} ({type(e).__name__}: {e}). "
                           f"Expected {expected_file_hint or 'the ImageNet notop weights of ' + backbone.name}.") from e
