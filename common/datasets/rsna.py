"""`rsna`: the RSNA Pediatric Bone Age Challenge 2017 data, from the user's manual download.

Accepted layouts (files are found anywhere under the manual directory):
- official (Stanford AIMI / RSNA): training CSV + image folder; validation CSV + image
  folders; test images + ground-truth CSV or XLSX;
- Kaggle (kmader/rsna-bone-age): training CSV + folder; test folder whose CSV has no ages
  (the test split is then left out with a warning: add the ground-truth file to build it).
A label file's split is read from its path below the download folder (train / valid / test); images are matched to ids
by file stem. Splits are the challenge's: train 12,611 / validation 1,425 / test 200. When
the validation images are absent, validation is carved from train by `common.splits`.
The test reference must be the continuous mean of six reviewers (see the data README);
integer test labels are accepted with a warning.
"""
import dataclasses
import hashlib
import warnings
from pathlib import Path

import pandas as pd
import tensorflow_datasets as tfds

from common import splits as split_rule
from common.datasets.base import DEFAULT_MAX_SIDE, BoneAgeBuilder, DataError, input_signature, validate
from common.images import index_images
from common.labels import LabelError, Problem, check_labels, normalise_columns, read_table

OFFICIAL_COUNTS = {"train": 12611, "validation": 1425, "test": 200}
LABEL_SUFFIXES = (".csv", ".xlsx", ".xls")
SPLIT_KEYWORDS = {"train": ("train",), "validation": ("valid",), "test": ("test",)}


class IntegerTestLabelsWarning(UserWarning):
    pass


@dataclasses.dataclass(eq=False)
class RsnaConfig(tfds.core.BuilderConfig):
    max_side: int = DEFAULT_MAX_SIDE
    skip_bad: bool = False
    train_labels: str = ""       # explicit label files override the search by file name
    validation_labels: str = ""
    test_labels: str = ""


def rsna_config(max_side: int = DEFAULT_MAX_SIDE, **kwargs) -> RsnaConfig:
    name = "default" if max_side == DEFAULT_MAX_SIDE else f"max{max_side}"
    return RsnaConfig(name=name, max_side=max_side, **kwargs)


def _has_age_column(path) -> bool:
    try:
        normalise_columns(read_table(path).head(0), path)
        return True
    except LabelError:
        return False


def find_label_files(root: Path) -> dict[str, Path]:
    """Finds the label file of each split by name; prefers, for test, a file that has ages."""
    found = {}
    candidates = [p for p in sorted(root.rglob("*")) if p.suffix.lower() in LABEL_SUFFIXES
                  and not p.name.startswith(".")]
    for split, keywords in SPLIT_KEYWORDS.items():
        # The path below the download folder, not only the name: the official test ground truth
        # is "Bone Age Test Set/Bone age ground truth.xlsx".
        files = [p for p in candidates if any(k in p.relative_to(root).as_posix().lower() for k in keywords)]
        with_ages = [p for p in files if _has_age_column(p)]
        if split == "test" and files and not with_ages:
            warnings.warn(f"Test label file(s) {[str(p) for p in files]} have no bone ages (the Kaggle "
                          "layout): the test split is left out. Put the ground-truth file (continuous "
                          "six-reviewer reference) in the download folder or pass it to `python -m common.prepare "
                          "rsna:PATH --test-labels FILE`.")
            continue
        files = with_ages or files
        if len(files) > 1:
            raise DataError(f"Several {split} label files under {root}: {[str(p) for p in files]}; "
                            f"keep one or pass `python -m common.prepare rsna:PATH --{split}-labels FILE`.")
        if files:
            found[split] = files[0]
    return found


class Rsna(BoneAgeBuilder):
    """RSNA Pediatric Bone Age Challenge 2017 (Halabi et al., Radiology 2019;290:498-503)."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download the RSNA Pediatric Bone Age Challenge data yourself (Stanford AIMI or Kaggle "
        "kmader/rsna-bone-age; research use under the RSNA terms) and pass its folder with "
        "--data rsna:PATH or BONEAGE_RSNA_DIR=PATH. The kit never downloads it.")

    INFO = {
        "homepage": "https://www.rsna.org/rsnai/ai-image-challenge/rsna-pediatric-bone-age-challenge-2017",
        "citation": "Halabi SS, et al. The RSNA Pediatric Bone Age Machine Learning Challenge. "
                    "Radiology 2019;290(2):498-503.",
        "description": "RSNA Pediatric Bone Age Challenge 2017 in the boneage-repro schema.",
    }

    def _label_files(self, root: Path) -> dict[str, Path]:
        """{split: label file}: found by name under `root`, overridden by the config's explicit files."""
        files = find_label_files(root)
        for split in OFFICIAL_COUNTS:
            explicit = getattr(self.builder_config, f"{split}_labels")
            if explicit:
                files[split] = Path(explicit)
        return files

    def current_inputs(self, manual_dir):
        cfg = self.builder_config
        root = Path(manual_dir)
        with warnings.catch_warnings():  # the build itself warns about the layout, once
            warnings.simplefilter("ignore")
            files = self._label_files(root)
        options = {"skip_bad": cfg.skip_bad, "max_side": cfg.max_side,
                   **{f"{s}_labels": getattr(cfg, f"{s}_labels") for s in OFFICIAL_COUNTS}}
        return input_signature(files.values(), index_images(root).values(), root, options)

    def _read_tables(self, files, index) -> tuple[dict, list, list]:
        """({split: every row of its label file, image path or NaN}, bad rows, unusable files)."""
        tables, problems, unusable = {}, [], []
        for split, path in files.items():
            try:
                table, found = check_labels(path, split_column=None)
            except LabelError as e:  # listed with everything else; the other files are still checked
                unusable.append(Problem(str(path), None, None, str(e)))
                continue
            problems += found
            table["path"] = table["id"].map(index)
            table["split"] = split
            tables[split] = table
        return tables, problems, unusable

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        root = Path(dl_manager.manual_dir)
        if not root.is_dir():
            raise DataError(f"RSNA download folder not found: {root}. {self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        meta = self._metadata()
        meta["inputs"] = self.current_inputs(root)  # before reading: a change during the build reads as stale
        files = self._label_files(root)
        if "train" not in files:
            raise DataError(f"No training label file (a CSV whose name contains 'train') under {root}. "
                            + self.MANUAL_DOWNLOAD_INSTRUCTIONS)
        tables, problems, unusable = self._read_tables(files, index_images(root))
        meta["label_files"] = {s: {"path": str(p.resolve()), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                               for s, p in files.items() if p.is_file()}
        meta["max_side"] = cfg.max_side
        if "train" not in tables:  # its file is unusable: validate raises, listing it with everything else
            validate(pd.concat(tables.values()) if tables else _NO_ROWS, root, cfg.skip_bad,
                     label_problems=problems, unusable_files=unusable)

        # Validation: official images if present, else carved from train by the hash rule.
        val = tables.get("validation")
        if val is None or val["path"].notna().sum() == 0:
            train = tables["train"]
            carved = train["id"].map(split_rule.carved_validation)
            train.loc[carved, "split"] = "validation"
            tables["validation"] = train[carved]
            tables["train"] = train[~carved]
            meta["validation_source"] = ("carved from the training ids (validation images absent): "
                                         + split_rule.SPLIT_RULE)
            print(f"rsna: validation images not found; carving validation from train by id hash "
                  f"({int(carved.sum())} images).")
        else:
            meta["validation_source"] = "official challenge validation set"

        test = tables.get("test")
        if test is not None:
            if test["path"].notna().sum() == 0:
                warnings.warn(f"Test labels {files['test']} found but none of their images: test split left out.")
                del tables["test"]
            elif (test["boneage_months"].dropna() == test["boneage_months"].dropna().round()).all():
                warnings.warn(
                    "The test labels are all whole months: this looks like the integer version of the "
                    "test reference. Published challenge results (winner 4.26 months MAE) use the "
                    "continuous mean of six reviewers; numbers against integer labels are not comparable.",
                    IntegerTestLabelsWarning)
                meta["test_reference"] = "integer labels (NOT the continuous six-reviewer reference)"
            else:
                meta["test_reference"] = "continuous (mean of six reviewers)"

        records = pd.concat(tables.values(), ignore_index=True)
        problems += _ids_in_several_splits(records)
        records = validate(records, root, cfg.skip_bad, label_problems=problems, unusable_files=unusable,
                           builder=self)
        counts = records["split"].value_counts().to_dict()
        meta["split_rule"] = meta["validation_source"]
        differs = {s: (counts.get(s, 0), n) for s, n in OFFICIAL_COUNTS.items() if counts.get(s, 0) != n}
        if differs and meta["validation_source"].startswith("official"):
            print("rsna: split sizes differ from the challenge's (found, official): "
                  + ", ".join(f"{s} {a} vs {b}" for s, (a, b) in differs.items()))
        return {s: self._generate_from_records(s, records[records["split"] == s])
                for s in OFFICIAL_COUNTS if (records["split"] == s).any()}


def _ids_in_several_splits(records: pd.DataFrame) -> list[Problem]:
    """(Repeats within one file are the label check's "duplicate id".)"""
    named = records[~records["id"].isin(["", "nan", "None"])]
    splits_per_id = named.groupby("id")["split"].nunique()
    several = named[named["id"].isin(splits_per_id[splits_per_id > 1].index)]
    return [Problem(r["file"], int(r["row"]), r["id"], "id appears in more than one split")
            for _, r in several.iterrows()]


# What `validate` gets when no label file could be read at all.
_NO_ROWS = pd.DataFrame(columns=["id", "boneage_months", "male", "split", "path", "file", "row"])
