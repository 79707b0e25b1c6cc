"""--weights: a matching keras.applications file loads; a wrong or damaged one is refused clearly."""
import h5py
import keras
import numpy as np
import pytest

from common.weights import WeightsError, load_backbone_weights


def save_legacy_h5(model, path):
    """Writes weights in the legacy HDF5 layout of the keras.applications downloads."""
    from keras.src.legacy.saving import legacy_h5_format
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


@pytest.fixture(scope="module")
def backbone():
    return keras.applications.ResNet50(include_top=False, weights=None, pooling="avg",
                                       input_shape=(32, 32, 3), name="resnet50")


def test_matching_file_loads(backbone, tmp_path):
    source = keras.applications.ResNet50(include_top=False, weights=None, pooling="avg", input_shape=(32, 32, 3))
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    save_legacy_h5(source, path)
    load_backbone_weights(backbone, path)
    np.testing.assert_array_equal(backbone.get_layer("conv1_conv").kernel.numpy(),
                                  source.get_layer("conv1_conv").kernel.numpy())


def test_other_architecture_is_refused_naming_both(backbone, tmp_path):
    other = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="dense_a")])
    path = tmp_path / "vgg16_weights.h5"
    save_legacy_h5(other, path)
    with pytest.raises(WeightsError) as e:
        load_backbone_weights(backbone, path, "ResNet50 notop file")
    msg = str(e.value)
    assert "expected: ResNet50 notop file" in msg and "conv1_conv" in msg
    assert "found: 1 layers with weights (dense_a)" in msg


def test_damaged_and_missing_files(backbone, tmp_path):
    junk = tmp_path / "weights.h5"
    junk.write_bytes(b"not an hdf5 file")
    with pytest.raises(WeightsError, match="not an HDF5 weights file"):
        load_backbone_weights(backbone, junk)
    with pytest.raises(WeightsError, match="no such file"):
        load_backbone_weights(backbone, tmp_path / "absent.h5")
