"""Fixtures shared by the tests beside the modules and in tests/."""
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Runs started by tests (and the tables they regenerate) go to a scratch folder, never into the
# committed results/; subprocesses inherit it.
os.environ.setdefault("BONEAGE_RESULTS_DIR", tempfile.mkdtemp(prefix="boneage-results-"))
# pytest-xdist (`-n 2` in pyproject.toml: on 2 cores, one worker's single-threaded stretches -
# graph building, Python preprocessing - leave the other core to the second worker): each worker
# builds datasets in its own folder, since two processes building one dataset in one folder race.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _datasets = Path(os.environ.get("BONEAGE_DATA_DIR") or tempfile.mkdtemp(prefix="boneage-datasets-"))
    os.environ["BONEAGE_DATA_DIR"] = str(_datasets / os.environ["PYTEST_XDIST_WORKER"])
ROOT = Path(__file__).resolve().parent
# Subprocess timeouts in tests catch hangs, never slowness: a training subprocess that takes 10 minutes
# on an idle machine may take 40 on a loaded one, and must still pass.
SUBPROCESS_TIMEOUT_S = int(os.environ.get("BONEAGE_TEST_TIMEOUT_S", 3 * 3600))
# The paper smoke tests train each paper's pipeline, head, loss and read-out on a small stand-in backbone
# (common/backbones.py): ResNet-50 and InceptionV3 learn far too slowly on a 2-core CI machine (a larson18
# run long enough to learn took an hour there). The paper backbones are built and run in each model_test.py.
STAND_IN_BACKBONE = ["--set", "model.backbone=tiny_cnn"]
SHARED_DATA = Path(os.environ.get("BONEAGE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _installed(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


# Tests of an optional stack skip with the reason (and the install command) when it is absent,
# never fail: the test extra installs it, a user's own environment may not have it.
requires_jax = pytest.mark.skipif(not _installed("jax"), reason='jax is not installed: pip install -e ".[jax]" '
                                  '(the test extra, pip install -e ".[test]", includes it)')


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data (real RSNA thumbnails and radiographs); absent in a user's fresh clone."""
    if not (SHARED_DATA / "rsna-thumbs100" / "labels.csv").exists():
        pytest.skip(f"real RSNA data not found at {SHARED_DATA} (a fresh clone has no ../shared); "
                    "CI has it")
    return SHARED_DATA


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """One datasets directory for the whole session, so each dataset is built once."""
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="session")
def tiny_phantoms(data_dir):
    """A tiny phantom dataset (64 px; 48 / 16 / 16) built once per session."""
    from common import data
    from common.datasets import Phantoms, PhantomsConfig
    config = PhantomsConfig(name="tiny", size=64, n_train=48, n_validation=16, n_test=16, seed=1)
    return data.build(Phantoms(config=config, data_dir=data_dir), log=lambda *_: None)


def write_image_folder(root, rows, size=(40, 30), fmt="png", seed=0):
    """Writes small random radiograph-like images and returns {id: pixels}."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    pixels = {}
    for r in rows:
        img = rng.integers(0, 256, size=size, dtype=np.uint8)
        cv2.imwrite(str(root / "images" / f"{r['id']}.{fmt}"), img)
        pixels[str(r["id"])] = img
    return pixels


@pytest.fixture
def make_folder(tmp_path):
    """make_folder(rows, header=None) -> folder with images/ and labels.csv."""
    def make(rows, columns=None, fmt="png", name="src"):
        root = tmp_path / name
        write_image_folder(root, rows, fmt=fmt)
        df = pd.DataFrame(rows)
        if columns:
            df = df.rename(columns=columns)
        df.to_csv(root / "labels.csv", index=False)
        return root
    return make


# A tiny regression task (not a paper) for testing common.train end to end in seconds: resume,
# evaluation, prediction, faults. Each reproduction's own smoke test runs its real model.
TINY_TASK = textwrap.dedent('''
    """A tiny regression task for testing common.train (not a paper)."""
    import sys
    import time

    import keras
    import numpy as np
    import tensorflow as tf

    from common import preprocessing
    from common.config import Config
    from common.task import DataSpec, Task
    from common.train import main


    def get_config(variant=""):
        return Config({"seed": 0, "data": {"image_size": 32}, "model": {"batchnorm": False},
                       "train": {"epochs": 3, "batch_size": 16, "optimizer": {"name": "adam", "learning_rate": 3e-3},
                                 "schedule": {"name": "constant"}, "sleep_per_epoch": 0.0, "bn_recompute_batches": 0,
                                 "bn_recompute_from": "augmented"}})


    def build_model(config):
        image = keras.Input((32, 32, 1), name="image")
        male = keras.Input((1,), name="male")
        x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(image)
        if config.model.batchnorm:
            x = keras.layers.BatchNormalization(name="bn")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Concatenate()([x, male])
        out = keras.layers.Dense(1, dtype="float32")(x)
        return keras.Model({"image": image, "male": male}, out)


    class Slow(keras.callbacks.Callback):
        def __init__(self, seconds):
            self.seconds = seconds

        def on_epoch_end(self, epoch, logs=None):
            time.sleep(self.seconds)


    def predict(model, inputs, config):
        return {"regression": np.asarray(model.predict_on_batch(inputs)).reshape(-1)}


    TASK = Task(
        paper="tiny", citation="none (a test task)", get_config=get_config, build_model=build_model,
        data=DataSpec(
            preprocess=lambda c, t: lambda e: preprocessing.to_unit_float(preprocessing.letterbox(e, 32)),
            to_model_io=lambda c: lambda b: ({"image": b["image"], "male": tf.cast(b["male"], tf.float32)[:, None]},
                                             b["boneage_months"])),
        loss=lambda c: "mae", metrics=lambda c: [keras.metrics.MeanAbsoluteError(name="mae")], predict=predict,
        needs_sex=True)

    if __name__ == "__main__":
        sys.exit(main(TASK))
''')


@pytest.fixture()
def tiny_task(tmp_path, tiny_phantoms, monkeypatch):
    (tmp_path / "tiny_task.py").write_text(TINY_TASK)
    base_env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}",
               BONEAGE_DATA_DIR=str(tiny_phantoms.version_dir.parents[2]), TF_CPP_MIN_LOG_LEVEL="2")
    data = "phantoms/tiny"

    def run(*args, wait=True, script="tiny_task.py", env=None):
        """Runs the tiny task's command line; `env`: variables to set (or, as None, to unset) for this run."""
        cmd = [sys.executable, str(tmp_path / script), *args]
        run_env = {k: v for k, v in {**base_env, **(env or {})}.items() if v is not None}
        if not wait:
            return subprocess.Popen(cmd, cwd=ROOT, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
        # The timeout only guards against a hang: a loaded 2-core machine may be many times slower
        # than an idle one, and a test must not fail for that.
        return subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    return run, data


def validation_mean_predictor_mae(data: str, data_dir) -> float:
    """The smoke tests' bar: MAE on the validation split of always predicting the training labels' mean."""
    import numpy as np

    from common import data as data_lib
    from common import pipeline
    handle = data_lib.resolve(data, data_dir=data_dir, log=lambda *_: None)

    def labels(split):
        return np.array([float(e["boneage_months"]) for e in pipeline.read_split(handle, split)])
    return float(np.abs(labels("validation") - labels("train").mean()).mean())
