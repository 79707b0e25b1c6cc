"""Run directories and their records: where a run's files are, and the one reader and writer of run.json.

A run directory (results/<paper>/<data>_<variant>_<size>px, or wherever --out put it):

    config.json                      the config the run trained with
    run.json                         the run record: what ran, on which data, where, for how long,
                                     and its evaluations (results/README.md is built from these)
    checkpoints/best.weights.h5      the weights of the best epoch (never committed)
    checkpoints/last.weights.h5      the weights after the last finished epoch (never committed)
    <name>/                          sub-runs, each a run directory of its own (rsna17_second
                                     trains one network per sex in <run>/female and <run>/male)

    run = RunDir(path)
    record = run.record()            # {} if there is none yet; RecordError if unreadable
    run.write_record(record)         # atomic; stamps "schema": SCHEMA
    run.best_weights()               # checkpoints/best, else last, else None
    find_runs(results_dir)           # the RunDirs of <paper>/<run>/run.json, in path order

The record's schema: a record carries "schema": SCHEMA (an integer), which a change to the
meaning of its keys increases. A record without the key is a legacy one, from before the key
existed (the records committed under results/ are), and is read as it is. A record from a newer
kit (a higher schema), a file that is not a JSON object, or one that lacks a key its reader
needs is refused with a message naming the file. The keys themselves are unchanged: a record is
a plain dict, written with sorted keys.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from common import io
from common.config import Config
from common.errors import UsageError

SCHEMA = 1  # the schema new records are written with; the highest this code reads
RECORD = "run.json"
CONFIG = "config.json"
BEST, LAST = "checkpoints/best.weights.h5", "checkpoints/last.weights.h5"
WEIGHTS = (BEST, LAST)  # in order of preference: best if validation picked one, else last


class RecordError(UsageError):
    """A run record or config that cannot be used: not JSON, not an object, too new, or incomplete."""


def run_name(data_name: str, variant: str, image_size) -> str:
    """The directory name `train` gives a run by default: <data>_<variant>_<size>px, the dataset's
    name with "/" as "-" ("phantoms/default" -> "phantoms-default_small_72px")."""
    return f"{data_name.replace('/', '-')}_{variant}_{image_size}px"


def _read_json_object(path: Path, what: str) -> dict:
    try:
        value = json.loads(path.read_text())
    except UnicodeDecodeError as e:
        raise RecordError(f"{path}: not a {what}: not UTF-8 text ({e}); rerun the command that wrote it "
                          "or remove the file") from None
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: not a {what}: not valid JSON ({e}); it was cut short or edited by hand. "
                          "Rerun the command that wrote it, or restore the file") from None
    if not isinstance(value, dict):
        raise RecordError(f"{path}: not a {what}: expected a JSON object, found {type(value).__name__}")
    return value


def check_record(record, path="run record", required=()) -> dict:
    """`record` if this code can read it: a dict whose "schema" (when present: a legacy record has
    none) is an integer no higher than SCHEMA, with every key in `required`; RecordError otherwise."""
    if not isinstance(record, dict):
        raise RecordError(f"{path}: not a run record: expected a JSON object, found {type(record).__name__}")
    schema = record.get("schema", 0)  # 0: a legacy record, written before the key existed
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 0:
        raise RecordError(f"{path}: not a run record of this kit: its \"schema\" is {schema!r}, expected a whole "
                          f"number up to {SCHEMA}")
    if schema > SCHEMA:
        raise RecordError(f"{path}: a run record of schema {schema}, written by a newer version of this kit; this "
                          f"code reads schema {SCHEMA} and older. Update the code (git pull) to read it.")
    missing = [key for key in required if key not in record]
    if missing:
        raise RecordError(f"{path}: the run record has no {', '.join(repr(k) for k in missing)}; expected a record "
                          "that `train` or `evaluate` wrote")
    return record


def read_record(path, required=()) -> dict:
    """The run record in the file `path`, checked (check_record)."""
    path = Path(path)
    return check_record(_read_json_object(path, "run record"), path, required)


class RunDir(os.PathLike):
    """A run directory: its files by name, its record and config read and checked, its weights.

    Path-like: `Path(run)`, `open(run / "x")` and `os.fspath(run)` work; `run / "x"` is a Path.
    """

    def __init__(self, path):
        self.path = Path(path.path if isinstance(path, RunDir) else path)

    # --- path-like
    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __truediv__(self, other) -> Path:
        return self.path / other

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RunDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    # --- files
    @property
    def record_path(self) -> Path:
        return self.path / RECORD

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    def has_record(self) -> bool:
        return self.record_path.is_file()

    def record(self, required=(), missing_ok: bool = True) -> dict:
        """The run record, checked; {} when the run has none yet (`missing_ok`), else RecordError."""
        if not self.record_path.exists():
            if missing_ok and not required:
                return {}
            raise RecordError(f"{self.path}: no {RECORD} (the run record); expected a run directory that `train` "
                              "or `evaluate` wrote")
        return read_record(self.record_path, required)

    def write_record(self, record: dict) -> dict:
        """Writes the record atomically (whole or not at all) with "schema": SCHEMA; returns what was
        written. The caller's dict is left as it is."""
        out = {**check_record(record, self.record_path), "schema": SCHEMA}
        io.atomic_write_json(self.record_path, out)
        return out

    def config(self) -> Config | None:
        """The config the run trained with (config.json), or None when it has none."""
        if not self.config_path.is_file():
            return None
        return Config(_read_json_object(self.config_path, "run config"))

    # --- weights
    def best_weights(self) -> Path | None:
        """checkpoints/best.weights.h5, else checkpoints/last.weights.h5, else None."""
        return next((self.path / name for name in WEIGHTS if (self.path / name).is_file()), None)

    def weights_files(self) -> list[Path]:
        """Every weights file of the run: best, then last, each in the run and then in its sub-runs
        (one directory down). A record alone does not count: weights are never committed."""
        return [p for name in WEIGHTS for p in (self.path / name, *sorted(self.path.glob(f"*/{name}")))
                if p.is_file()]


def find_runs(results_dir) -> list[RunDir]:
    """The runs of a results folder, <paper>/<run>/run.json, in path order (sub-runs, a level deeper, not)."""
    return [RunDir(p.parent) for p in sorted(Path(results_dir).glob(f"*/*/{RECORD}"))]
