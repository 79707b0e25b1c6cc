"""`folder`: any directory of radiographs (PNG, JPEG or DICOM) plus a labels CSV.

This is how ../shared/data/rsna-thumbs100, ../shared/data/rsna-sample and a hospital's own
data come in. Labels: id, boneage, male and optionally a split column (train / validation /
test); without one, `common.splits.folder_split` (a hash of the id) assigns 80/10/10.
"""
import dataclasses
from pathlib import Path

import pandas as pd
import tensorflow_datasets as tfds

from common import splits as split_rule
from common.datasets.base import DEFAULT_MAX_SIDE, BoneAgeBuilder, DataError, input_signature, validate
from common.images import index_images
from common.labels import SPLITS, check_labels


@dataclasses.dataclass(eq=False)
class FolderConfig(tfds.core.BuilderConfig):
    labels_csv: str = ""          # default: <manual_dir>/labels.csv
    images_dir: str = ""          # default: <manual_dir>/images if it exists, else <manual_dir>
    split_column: str = "split"   # a column of the labels CSV naming each row's split, if any
    max_side: int = DEFAULT_MAX_SIDE
    skip_bad: bool = False


def folder_config(name: str, max_side: int = DEFAULT_MAX_SIDE, split_column: str | None = None,
                  **kwargs) -> FolderConfig:
    """A config whose name also says the size cap and the split column when they are not the
    defaults: the same folder split two ways is two datasets."""
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-_") or "folder"
    if max_side != DEFAULT_MAX_SIDE:
        slug += f"-max{max_side}"
    split_column = split_column or FolderConfig.split_column
    if split_column != FolderConfig.split_column:
        slug += "-by-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in split_column)
    return FolderConfig(name=slug, max_side=max_side, split_column=split_column, **kwargs)


class Folder(BoneAgeBuilder):
    """A directory of radiographs and a labels CSV, written as TFRecord shards."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Pass the directory that holds the images (directly or in images/) and labels.csv "
        "(columns id, boneage, male [, split]).")

    INFO = {"description": "Radiographs from a folder with a labels CSV (boneage-repro schema)."}

    def _sources(self, root: Path) -> tuple[Path, Path]:
        """(labels CSV, images folder) of the folder `root`."""
        cfg = self.builder_config
        labels_csv = Path(cfg.labels_csv) if cfg.labels_csv else root / "labels.csv"
        images_dir = Path(cfg.images_dir) if cfg.images_dir else (
            root / "images" if (root / "images").is_dir() else root)
        return labels_csv, images_dir

    def current_inputs(self, manual_dir):
        cfg = self.builder_config
        labels_csv, images_dir = self._sources(Path(manual_dir))
        return input_signature([labels_csv], index_images(images_dir).values(), images_dir,
                               {"skip_bad": cfg.skip_bad, "max_side": cfg.max_side, "split_column": cfg.split_column})

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        root = Path(dl_manager.manual_dir)
        labels_csv, images_dir = self._sources(root)
        meta = self._metadata()
        meta["inputs"] = self.current_inputs(root)  # before reading: a change during the build reads as stale
        # A file that cannot be read (no such file, missing columns, no rows) raises LabelError
        # here: without ids there are no images to check.
        labels, label_problems = check_labels(labels_csv, split_column=cfg.split_column)
        labels["path"] = labels["id"].map(index_images(images_dir))
        has_split = "split" in labels.columns
        if not has_split and cfg.split_column != FolderConfig.split_column:
            raise DataError(f"{labels_csv} has no column {cfg.split_column!r} (--split-column): its columns are "
                            f"{list(pd.read_csv(labels_csv, nrows=0).columns)}.")
        if not has_split:
            labels["split"] = labels["id"].map(split_rule.folder_split)
        labels = validate(labels, images_dir, cfg.skip_bad, label_problems=label_problems, builder=self)
        meta.update({
            "source": {"images_dir": str(images_dir.resolve()), "labels_csv": str(labels_csv.resolve())},
            "split_rule": f"column {cfg.split_column!r} of the labels CSV" if has_split else split_rule.SPLIT_RULE,
            "max_side": cfg.max_side,
        })
        return {s: self._generate_from_records(s, labels[labels["split"] == s])
                for s in SPLITS if (labels["split"] == s).any()}
