"""TFDS builders for the three data sources, all written in one example schema.

    image           8-bit grayscale PNG, long side capped (default 1024 px)
    id              str
    boneage_months  float32
    male            int64, 0/1
    mask, keypoints phantoms only: hand mask (PNG) and (3, 2) float32 key points (x, y) / size

`rsna` reads the user's manual download, `folder` any directory of images plus a labels
CSV, `phantoms` the synthetic hands of `common.phantoms`. TFDS writes each build into a
temporary directory and renames it when complete, so readers never see a partial dataset
and an interrupted build is simply rerun.
"""
from common.datasets.base import DataError  # noqa: F401
from common.datasets.folder import Folder, FolderConfig  # noqa: F401
from common.datasets.phantoms import Phantoms, PhantomsConfig  # noqa: F401
from common.datasets.rsna import Rsna, RsnaConfig  # noqa: F401
