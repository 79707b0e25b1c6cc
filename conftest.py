"""Fixtures shared by the tests beside the modules and in tests/."""
import os
import tempfile
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
SHARED_DATA = Path(os.environ.get("BONEAGE_SHARED_DATA", ROOT.parent / "shared" / "data"))


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
