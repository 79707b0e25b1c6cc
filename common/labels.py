"""Label files: read any of the header variants in circulation into one schema, and validate.

The RSNA challenge data reached researchers in several layouts; the same three facts carry
different headers (`id` / `Image ID` / `Case ID`, `male` True/False or `Sex` M/F, `boneage` /
`Bone Age (months)` / `Ground truth bone age (months)`). Everything downstream sees one schema:

    id (str) | boneage_months (float, 0-240) | male (0/1) [| split]

Validation collects every offender (file and row) before anything is written, so one run
tells the user everything that is wrong with a file.
"""
import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd

AGE_MIN_MONTHS = 0.0
AGE_MAX_MONTHS = 240.0
SPLITS = ("train", "validation", "test")

# Normalised header (lower case, runs of non-alphanumerics -> "_") -> schema column.
HEADER_ALIASES = {
    "id": "id", "image_id": "id", "case_id": "id", "imageid": "id", "caseid": "id",
    "boneage": "boneage_months", "bone_age": "boneage_months", "boneage_months": "boneage_months",
    "bone_age_months": "boneage_months", "ground_truth_bone_age_months": "boneage_months",
    "male": "male", "sex": "sex", "gender": "sex",
}
MALE_VALUES = {"true": 1, "1": 1, "1.0": 1, "m": 1, "male": 1, "false": 0, "0": 0, "0.0": 0,
               "f": 0, "female": 0}
SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation",
                 "valid": "validation", "val": "validation", "test": "test"}


class LabelError(ValueError):
    """A label file that cannot be used; the message lists every offender."""


@dataclasses.dataclass
class Problem:
    file: str
    row: int | None  # 1-based data row in the file (header = row 0), None for file-level problems
    id: str | None
    reason: str

    def __str__(self):
        where = f"{self.file}" + (f", row {self.row}" if self.row is not None else "")
        return f"{where}" + (f" (id {self.id})" if self.id is not None else "") + f": {self.reason}"


def format_problems(problems, limit=50):
    lines = [f"  - {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


def _normalise_header(name) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


def read_table(path) -> pd.DataFrame:
    """Reads a CSV or an Excel sheet with every cell as a string."""
    path = Path(path)
    if not path.exists():
        raise LabelError(f"Label file not found: {path}")
    try:
        if path.suffix.lower() in (".xlsx", ".xls"):
            return pd.read_excel(path, dtype=str)
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (ValueError, OSError, ImportError, pd.errors.ParserError) as e:
        raise LabelError(f"Cannot read label file {path}: {e}") from e
    _refuse_other_separators(table, path)
    return table


# A spreadsheet saved with a European locale writes ';' (or a tab) between fields, and often a
# decimal comma inside them ("120,5"). Guessing the separator would then misread the ages, so
# the file is refused with the fix instead of read.
OTHER_SEPARATORS = {";": "semicolon", "\t": "tab"}


def _refuse_other_separators(table: pd.DataFrame, path: Path):
    if len(table.columns) != 1:
        return
    header = str(table.columns[0])
    for sep, name in OTHER_SEPARATORS.items():
        if sep in header:
            raise LabelError(f"{path} looks {name}-separated (header {header!r}); the kit expects "
                             f"comma-separated values with the header id,boneage,male[,split]. Save it as "
                             f"CSV with commas as the separator and '.' as the decimal point.")


def normalise_columns(df: pd.DataFrame, path, split_column: str | None = "split",
                      require_age: bool = True) -> pd.DataFrame:
    """Renames header variants to the schema; raises LabelError naming found and expected columns."""
    found = list(df.columns)
    rename = {}
    for col in found:
        key = _normalise_header(col)
        if split_column and key == _normalise_header(split_column):
            rename[col] = "split"
        elif key in HEADER_ALIASES and HEADER_ALIASES[key] not in rename.values():
            rename[col] = HEADER_ALIASES[key]
    df = df.rename(columns=rename)
    missing = []
    if "id" not in df.columns:
        missing.append("id (or 'Image ID' / 'Case ID')")
    if require_age and "boneage_months" not in df.columns:
        missing.append("boneage (or 'Bone Age (months)' / 'Ground truth bone age (months)')")
    if "male" not in df.columns and "sex" not in df.columns:
        missing.append("male (True/False/1/0) or Sex (M/F)")
    if missing:
        raise LabelError(f"{path}: missing column(s) {', '.join(missing)}. "
                         f"Columns found: {found}. Expected: id, boneage, male [, {split_column or 'split'}].")
    keep = ["id", "boneage_months", "male", "sex", "split"]
    return df[[c for c in keep if c in df.columns]].copy()


def check_labels(path, split_column: str | None = "split",
                 require_age: bool = True) -> tuple[pd.DataFrame, list[Problem]]:
    """Reads one label file and finds every bad row, dropping none.

    Returns every row (columns id, boneage_months, male, row (1-based), file, and split when
    the file has a split column; male / boneage_months / split are NaN where unusable) and
    the problems found. Builders check images of the same rows before deciding, so that one
    run lists every offender. Raises LabelError for a file that cannot be used at all
    (unreadable, missing columns, no rows).
    """
    path = Path(path)
    raw = read_table(path)
    df = normalise_columns(raw, path, split_column=split_column, require_age=require_age)
    if df.empty:
        raise LabelError(f"{path}: the labels file has no rows (only a header); expected one row per image.")
    df["row"] = np.arange(1, len(df) + 1)
    df["file"] = str(path)
    df["id"] = df["id"].astype(str).str.strip()
    df["id"] = df["id"].str.replace(r"\.0$", "", regex=True)  # Excel turns 4360 into "4360.0"
    found_problems = []

    def bad(mask, reason_fn):
        for _, r in df[mask].iterrows():
            found_problems.append(Problem(str(path), int(r["row"]), r["id"], reason_fn(r)))

    bad(df["id"].isin(["", "nan", "None"]), lambda r: "empty id")
    # Sex: one of the known spellings.
    sex_col = "male" if "male" in df.columns else "sex"
    df["sex_raw"] = df[sex_col].astype(str).str.strip()
    df["male"] = df["sex_raw"].str.lower().map(MALE_VALUES)
    bad(df["male"].isna(), lambda r: f"unknown sex value {r['sex_raw']!r} in column {sex_col!r} "
                                     f"(expected one of True/False/1/0/M/F)")
    # Age: a number within 0-240 months.
    if "boneage_months" in df.columns:
        text = df["boneage_months"].astype(str).str.strip()
        ages = pd.to_numeric(text, errors="coerce")
        bad(ages.isna(), lambda r: f"bone age {r['boneage_months']!r} is not a number")
        bad(ages.notna() & ((ages < AGE_MIN_MONTHS) | (ages > AGE_MAX_MONTHS)),
            lambda r: f"bone age {r['boneage_months']} months is outside "
                      f"{AGE_MIN_MONTHS:g}-{AGE_MAX_MONTHS:g} months")
        df["boneage_months"] = ages
    else:
        df["boneage_months"] = np.nan
    if "split" in df.columns:
        split = df["split"].astype(str).str.strip().str.lower().map(SPLIT_ALIASES)
        bad(split.isna(), lambda r: f"unknown split {r['split']!r} (expected one of {SPLITS})")
        df["split"] = split
    dup = df["id"].duplicated(keep=False) & ~df["id"].isin(["", "nan"])
    bad(dup, lambda r: "duplicate id")
    df = df.drop(columns=[c for c in ("sex", "sex_raw") if c in df.columns]).reset_index(drop=True)
    return df, found_problems


def without_rows(df: pd.DataFrame, problems) -> pd.DataFrame:
    """The rows of `df` that no problem names (by file and row), with male as int."""
    bad = {(p.file, p.row) for p in problems}
    keep = [(f, r) not in bad for f, r in zip(df["file"], df["row"])]
    df = df[keep].copy()
    df["male"] = df["male"].astype(int)
    return df.reset_index(drop=True)


def read_labels(path, split_column: str | None = "split", require_age: bool = True,
                problems: list | None = None) -> pd.DataFrame:
    """Reads and validates one label file.

    Returns the rows of `check_labels`, all valid. Raises LabelError listing every bad row
    unless `problems` is given, in which case bad rows are appended there and dropped.
    """
    df, found_problems = check_labels(path, split_column=split_column, require_age=require_age)
    if found_problems:
        if problems is None:
            raise LabelError(f"{path}: {len(found_problems)} problem(s) in the label file:\n"
                             + format_problems(found_problems))
        problems.extend(found_problems)
    return without_rows(df, found_problems)
