"""`folder`: any directory of radiographs (PNG, JPEG or DICOM) plus a labels CSV.

This is how ../shared/data/rsna-thumbs100, ../shared/data/rsna-sample and a hospital's own
data come in. Labels: id, boneage, male and optionally a split column (train / validation /
test); without one, `common.splits.folder_split` (a hash of the id) assigns 80/10/10.
"""
import dataclasses
import hashlib
from pathlib import Path

import pandas as pd
import tensorflow_datasets as tfds

from common import splits as split_rule
from common.datasets.base import DEFAULT_MAX_SIDE, BoneAgeBuilder, base_features, check_problems
from common.images import index_images
from common.labels import SPLITS, Problem, read_labels


@dataclasses.dataclass(eq=False)
class FolderConfig(tfds.core.BuilderConfig):
    labels_csv: str = ""          # default: <manual_dir>/labels.csv
    images_dir: str = ""          # default: <manual_dir>/images if it exists, else <manual_dir>
    split_column: str = "split"   # a column of the labels CSV naming each row's split, if any
    max_side: int = DEFAULT_MAX_SIDE
    skip_bad: bool = False


def folder_config(name: str, max_side: int = DEFAULT_MAX_SIDE, **kwargs) -> FolderConfig:
    """A config whose name also says the size cap when it is not the default."""
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-_") or "folder"
    if max_side != DEFAULT_MAX_SIDE:
        slug += f"-max{max_side}"
    return FolderConfig(name=slug, max_side=max_side, **kwargs)


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Folder(BoneAgeBuilder):
    """A directory of radiographs and a labels CSV, written as TFRecord shards."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Pass the directory that holds the images (directly or in images/) and labels.csv "
        "(columns id, boneage, male [, split]).")

    INFO = {"description": "Radiographs from a folder with a labels CSV (boneage-repro schema)."}

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        root = Path(dl_manager.manual_dir)
        labels_csv = Path(cfg.labels_csv) if cfg.labels_csv else root / "labels.csv"
        images_dir = Path(cfg.images_dir) if cfg.images_dir else (
            root / "images" if (root / "images").is_dir() else root)
        problems = []
        labels = read_labels(labels_csv, split_column=cfg.split_column,
                             problems=problems if cfg.skip_bad else None)
        index = index_images(images_dir)
        labels["path"] = labels["id"].map(index)
        for _, r in labels[labels["path"].isna()].iterrows():
            problems.append(Problem(str(labels_csv), int(r["row"]), r["id"],
                                    f"image missing: no {r['id']}.png/.jpg/.dcm under {images_dir}"))
        check_problems(problems, cfg.skip_bad, self)
        labels = labels[labels["path"].notna()]
        has_split = "split" in labels.columns
        if not has_split:
            labels["split"] = labels["id"].map(split_rule.folder_split)
        meta = self._metadata()
        meta.update({
            "source": {"images_dir": str(images_dir.resolve()), "labels_csv": str(labels_csv.resolve()),
                       "labels_sha256": _sha256(labels_csv)},
            "split_rule": f"column {cfg.split_column!r} of the labels CSV" if has_split else split_rule.SPLIT_RULE,
            "max_side": cfg.max_side,
        })
        return {s: self._generate_from_records(s, labels[labels["split"] == s])
                for s in SPLITS if (labels["split"] == s).any()}
