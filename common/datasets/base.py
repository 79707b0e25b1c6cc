"""What the three builders share: the schema, reading images in parallel, fingerprints, reports."""
import collections
import concurrent.futures as cf
import dataclasses
import hashlib
import os

import numpy as np
import pandas as pd
import tensorflow_datasets as tfds

from common import images, io
from common.labels import Problem, format_problems

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

    def _generate_from_records(self, split, records: pd.DataFrame):
        """Yields examples for rows (id, path, boneage_months, male, file, row).

        Every image is decoded; undecodable ones are collected and, unless the config says
        skip_bad, the build fails at the end of the split listing all of them (TFDS then
        deletes its temporary directory: nothing is left behind).
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
            raise DataError(f"{len(problems)} unreadable image(s) in split {split!r}; nothing was "
                            f"written. Fix or remove them, or rerun with --skip-bad:\n"
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


def check_problems(problems, skip_bad, builder=None):
    """Raises DataError listing every problem, or (skip_bad) records them for the report."""
    if not problems:
        return
    if not skip_bad:
        raise DataError(f"{len(problems)} problem(s) found before writing anything; nothing was "
                        f"written. Fix them, or rerun with --skip-bad to leave these rows out:\n"
                        + format_problems(problems))
    if builder is not None:
        builder.record_skipped(problems)


__all__ = ["BoneAgeBuilder", "DataError", "DEFAULT_MAX_SIDE", "base_features"]
