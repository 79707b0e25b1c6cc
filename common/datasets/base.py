"""What the three builders share: the schema, reading images in parallel, validation, fingerprints
of the content and of the inputs, reports."""
import collections
import concurrent.futures as cf
import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow_datasets as tfds

from common import images, io
from common.labels import Problem, format_problems, without_rows

DEFAULT_MAX_SIDE = 1024
SKIPPED_REPORT = "skipped.csv"


class DataError(ValueError):
    """Input data that cannot be turned into a dataset; the message lists every offender."""


def base_features(extra=None):
    features = {
        "image": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
        "id": tfds.features.Text(),
        "boneage_months": np.float32,
        "male": np.int64,
    }
    features.update(extra or {})
    return tfds.features.FeaturesDict(features)


def _load_one(args):
    """Worker: reads, caps and PNG-encodes one image. Returns (png bytes, None) or (None, error)."""
    path, max_side = args
    try:
        pixels = images.cap_long_side(images.read_image(path), max_side)
        return images.encode_png(pixels), None
    except images.ImageError as e:
        return None, str(e)
    except Exception as e:  # a damaged file can break a decoder in unexpected ways
        return None, f"{path}: {type(e).__name__}: {e}"


def parallel_map(fn, items, workers=None, window=64):
    """Ordered, bounded map over threads.

    The heavy parts (PNG/JPEG codecs, resizing, drawing) are OpenCV calls that release the
    GIL, so threads use every core without the start-up cost of processes (which would each
    import TensorFlow again); the window bounds how many results wait in memory.
    """
    workers = workers or min(os.cpu_count() or 1, 8)
    if workers <= 1:
        yield from map(fn, items)
        return
    with cf.ThreadPoolExecutor(workers) as pool:
        pending = collections.deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class Fingerprint:
    """Order-independent SHA-256 of a split's content: ids, labels and encoded pixels."""

    def __init__(self):
        self._rows = []

    def add(self, example_id, boneage, male, png: bytes):
        self._rows.append(f"{example_id}|{float(boneage):.4f}|{int(male)}|{hashlib.sha256(png).hexdigest()}")

    def hexdigest(self):
        return hashlib.sha256("\n".join(sorted(self._rows)).encode()).hexdigest()


class BoneAgeBuilder(tfds.core.GeneratorBasedBuilder):
    """Shared generation: image records -> validated, encoded, fingerprinted examples."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release of the boneage-repro schema."}
    INFO = {}            # description / homepage / citation of the subclass
    EXTRA_FEATURES = {}  # features beyond the shared schema

    def _info(self):
        return self.dataset_info_from_configs(features=base_features(self.EXTRA_FEATURES),
                                              metadata=tfds.core.MetadataDict(), **self.INFO)

    def _metadata(self):
        return self.info.metadata

    def current_inputs(self, manual_dir) -> dict | None:
        """`input_signature` of what a build from `manual_dir` would read now; None for builders
        whose input is their own code (phantoms), which are never stale."""
        return None

    def _generate_from_records(self, split, records: pd.DataFrame):
        """Yields examples for rows (id, path, boneage_months, male, file, row).

        The rows were validated (`validate`) before TFDS started writing; an image that became
        unreadable since is still caught here: unless the config says skip_bad, the build fails
        at the end of the split listing it (TFDS then deletes its temporary directory).
        """
        cfg = self.builder_config
        fingerprint, problems = Fingerprint(), []
        jobs = [(str(p), cfg.max_side) for p in records["path"]]
        rows = records.to_dict("records")
        progress = tfds.core.utils.tqdm(total=len(rows), desc=f"{self.name} {split}: reading images",
                                        unit=" img", leave=False)
        for rec, (png, error) in zip(rows, parallel_map(_load_one, jobs)):
            progress.update(1)
            if error is not None:
                problems.append(Problem(rec["file"], rec["row"], rec["id"], f"image unreadable: {error}"))
                continue
            fingerprint.add(rec["id"], rec["boneage_months"], rec["male"], png)
            yield rec["id"], {"image": png, "id": rec["id"],
                              "boneage_months": np.float32(rec["boneage_months"]),
                              "male": np.int64(rec["male"])}
        progress.close()
        self._finish_split(split, fingerprint, problems)

    def _generate_examples(self, records):
        """TFDS asks every builder for this; `_split_generators` calls `_generate_from_records` directly."""
        yield from self._generate_from_records("train", records)

    def _finish_split(self, split, fingerprint, problems):
        if problems and not self.builder_config.skip_bad:
            raise DataError(f"{len(problems)} image(s) of split {split!r} could not be read while writing "
                            f"(they were readable when validated: changed during the build?); nothing was "
                            f"written. Fix or remove them and rerun, or rerun with --skip-bad:\n"
                            + format_problems(problems))
        meta = self._metadata()
        meta.setdefault("fingerprints", {})[split] = fingerprint.hexdigest()
        if problems:
            self.record_skipped(problems)

    def record_skipped(self, problems):
        """Adds problems to the skip report written beside the dataset (and counted in metadata)."""
        meta = self._metadata()
        skipped = meta.setdefault("skipped", [])
        skipped.extend(dataclasses.asdict(p) for p in problems)
        io.atomic_to_csv(pd.DataFrame(skipped, columns=["file", "row", "id", "reason"]),
                         os.path.join(os.fspath(self.data_dir), SKIPPED_REPORT))
        print(f"skipped {len(problems)} row(s) or image(s); report: {SKIPPED_REPORT} in the dataset folder")
        for p in problems[:10]:
            print(f"  skipped: {p}")


# --- validation: one pass over labels, files and pixels, before anything is written ----------

def _decode_error(path) -> str | None:
    """Worker: None if the image decodes, else why not."""
    try:
        images.read_image(path)
        return None
    except images.ImageError as e:
        return str(e)
    except Exception as e:  # a damaged file can break a decoder in unexpected ways
        return f"{path}: {type(e).__name__}: {e}"


def missing_image_problems(records: pd.DataFrame, where) -> list[Problem]:
    return [Problem(r["file"], int(r["row"]), r["id"], f"image missing: no {r['id']}.png/.jpg/.dcm under {where}")
            for _, r in records[records["path"].isna()].iterrows()]


def undecodable_image_problems(records: pd.DataFrame) -> list[Problem]:
    """Decodes every image that exists.

    Only decoding finds a truncated or corrupt file, and doing it here, for every split, before
    TFDS writes anything, lets one run list every offender together (instead of failing split
    by split, one fix-and-rerun round each). It costs a second decode per image; the threads
    of `parallel_map` keep every core busy with it.
    """
    present = records[records["path"].notna()]
    rows = present.to_dict("records")
    progress = tfds.core.utils.tqdm(total=len(rows), desc="checking images", unit=" img", leave=False)
    problems = []
    for rec, error in zip(rows, parallel_map(_decode_error, [str(p) for p in present["path"]])):
        progress.update(1)
        if error is not None:
            problems.append(Problem(rec["file"], int(rec["row"]), rec["id"], f"image unreadable: {error}"))
    progress.close()
    return problems


def _problem_report(groups: dict[str, list[Problem]], per_group=30) -> str:
    """Every kind of problem under its own heading, so that one kind cannot hide another."""
    parts = []
    for title, problems in groups.items():
        if problems:
            parts.append(f"{title} ({len(problems)}):\n" + format_problems(problems, limit=per_group))
    return "\n".join(parts)


def _empty_splits(records: pd.DataFrame, kept: pd.DataFrame) -> dict[str, int]:
    """{split: rows it had} for every split that has rows in the labels but none left to write."""
    wanted = records["split"].dropna().value_counts()
    left = kept["split"].value_counts()
    return {s: int(n) for s, n in wanted.items() if left.get(s, 0) == 0}


def validate(records: pd.DataFrame, where, skip_bad: bool, label_problems=(), unusable_files=(),
             builder=None) -> pd.DataFrame:
    """The one validation pass: label rows, missing and undecodable images, across all splits.

    `records` holds every row of the label files (id, boneage_months, male, split, path (NaN when
    no image was found), file, row), bad ones included; `label_problems` are those found in the
    labels, `unusable_files` label files that could not be read at all (never skippable).
    Raises one DataError listing every offender unless `skip_bad`, which leaves them out and
    writes the skip report; a split (or the whole dataset) left empty is an error either way.
    Returns the rows to write, male as int.
    """
    groups = {"label files that cannot be used (fix these; --skip-bad cannot skip a whole file)": list(unusable_files),
              "bad label rows": list(label_problems),
              "missing images": missing_image_problems(records, where),
              "undecodable images": undecodable_image_problems(records)}
    problems = [p for group in list(groups.values())[1:] for p in group]
    if unusable_files or (problems and not skip_bad):
        n = len(unusable_files) + len(problems)
        hint = "" if unusable_files else ", or rerun with --skip-bad to leave these rows out"
        raise DataError(f"{n} problem(s) found before writing anything; nothing was written. "
                        f"Fix them{hint}:\n" + _problem_report(groups))
    kept = without_rows(records, problems)
    if kept.empty:
        raise DataError(f"No usable rows in {where}: --skip-bad would leave every row out, so there "
                        f"is nothing to build:\n" + _problem_report(groups))
    empty = _empty_splits(records, kept)
    if empty:
        which = ", ".join(f"{s!r} (all {n} of its rows are bad)" for s, n in sorted(empty.items()))
        raise DataError(f"--skip-bad would leave split(s) {which} empty; nothing was written. Fix "
                        f"these rows, or remove them from the labels to drop the split on purpose:\n"
                        + _problem_report(groups))
    if problems and builder is not None:
        builder.record_skipped(problems)
    return kept


# --- the inputs a build read: reused only while they are unchanged ---------------------------

def _key(path, root) -> str:
    """A path as shown in messages: relative to the input folder when inside it. (abspath, not
    resolve: no file-system calls per image on a download of 14,000 of them.)"""
    path = os.path.abspath(path)
    rel = os.path.relpath(path, os.path.abspath(root))
    return path if rel.startswith("..") else Path(rel).as_posix()


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def input_signature(label_files, image_paths, root, options: dict) -> dict:
    """What a build read: each label file's SHA-256, each image file's size and mtime, the options.

    Label files are small and hashed; images are only stat'ed (size + mtime_ns): hashing
    gigabytes of radiographs on every `resolve` would cost minutes, while replacing or editing
    a file always changes its mtime. Stored in the dataset's metadata.json by the build.
    """
    stats = {}
    for path in image_paths:
        st = os.stat(path)
        stats[_key(path, root)] = [st.st_size, st.st_mtime_ns]
    return {"labels": {_key(p, root): _sha256(Path(p)) for p in label_files},
            "images": stats, "options": dict(options)}


def _name_some(names, n=3) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def signature_change(old: dict | None, new: dict) -> str | None:
    """Why a dataset built from `old` inputs is stale for `new` ones (one line), or None."""
    if not old:
        return "it has no record of its inputs (built by an earlier version of the kit)"
    reasons = []
    old_labels, new_labels = old.get("labels", {}), new["labels"]
    for name in sorted(set(old_labels) | set(new_labels)):
        if old_labels.get(name) != new_labels.get(name):
            state = "removed" if name not in new_labels else "added" if name not in old_labels else "changed"
            reasons.append(f"{name} {state}")
    old_images, new_images = old.get("images", {}), new["images"]
    changed = {
        "added": set(new_images) - set(old_images),
        "changed": {k for k in set(new_images) & set(old_images) if list(new_images[k]) != list(old_images[k])},
        "removed": set(old_images) - set(new_images),
    }
    n_changed = sum(len(v) for v in changed.values())
    if n_changed:
        detail = ", ".join(f"{len(v)} {k} ({_name_some(v)})" for k, v in changed.items() if v)
        reasons.append(f"{n_changed} image file(s) changed/added/removed: {detail}")
    old_options, new_options = old.get("options", {}), new["options"]
    options = [f"{k} {old_options.get(k)!r} -> {new_options.get(k)!r}"
               for k in sorted(set(old_options) | set(new_options)) if old_options.get(k) != new_options.get(k)]
    if options:
        reasons.append("build options changed: " + ", ".join(options))
    return "; ".join(reasons) or None


__all__ = ["BoneAgeBuilder", "DataError", "DEFAULT_MAX_SIDE", "base_features", "input_signature",
           "signature_change", "validate"]
