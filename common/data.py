"""Naming, building and opening datasets: what `--data` means everywhere in the kit.

    --data phantoms              synthetic hands (built on first use, ~1 min)
    --data phantoms/small        a smaller, 128 px phantom set for CPU smoke runs
    --data rsna:PATH             the RSNA download in PATH (built on first use)
    --data rsna                  the RSNA download in $BONEAGE_RSNA_DIR, or an rsna already built
    --data folder:PATH           a directory of images + labels.csv (built on first use)
    --data folder/NAME           a folder dataset built before under that name
    --data rsna/CONFIG           an rsna dataset built before ("rsna/default": the name run records keep)
    --data phantoms/CONFIG       a phantom set (built on first use: made by code, nothing to point at)
    (none)                       rsna if $BONEAGE_RSNA_DIR is set, else phantoms (and says so)

Built datasets live in $BONEAGE_DATA_DIR (default ~/.boneage-repro/datasets), never in the repo.
A built rsna or folder dataset is reused only while its inputs are unchanged (the label files'
SHA-256, every image file's size and mtime, the build options); otherwise it is rebuilt, saying
why, and the previous build is kept until the new one is complete.
"""
import dataclasses
import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import tensorflow_datasets as tfds

from common.datasets import Folder, Phantoms, Rsna
from common.datasets.base import DEFAULT_MAX_SIDE, DataError, signature_change
from common.datasets.folder import folder_config
from common.datasets.rsna import rsna_config

RSNA_ENV = "BONEAGE_RSNA_DIR"
DATA_DIR_ENV = "BONEAGE_DATA_DIR"


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, Path.home() / ".boneage-repro" / "datasets"))


# Beside the labels CSV of a folder dataset that a paper's offline preprocessing wrote from another
# dataset (iglovikov18's registered canvases): {"source_dataset", "source_fingerprint", ...}.
DERIVED_MARKER = "DERIVED_FROM.json"


@dataclasses.dataclass
class DataHandle:
    """An opened, fully built dataset."""
    name: str                    # e.g. "phantoms/default", "folder/rsna-thumbs100"
    version_dir: Path
    builder: tfds.core.DatasetBuilder
    metadata: dict

    @property
    def splits(self) -> dict[str, int]:
        return {name: info.num_examples for name, info in self.builder.info.splits.items()}

    @property
    def has_keypoints(self) -> bool:
        return "keypoints" in self.builder.info.features

    def fingerprint(self, split: str | None = None) -> str:
        """SHA-256 of the content (ids, labels, pixels) of one split, or of the whole dataset."""
        prints = self.metadata.get("fingerprints", {})
        if split is not None:
            return prints[split]
        return hashlib.sha256(json.dumps(prints, sort_keys=True).encode()).hexdigest()

    def derived_from(self) -> dict:
        """{"source_dataset", "source_fingerprint"} when this dataset was written from another one
        image by image, keeping ids, labels and splits (DERIVED_MARKER), else {}.

        Its runs then belong to the source's experiment: the same radiographs, split and labels,
        with the paper's own preprocessing (segmentation, registration) done once ahead of training.
        """
        labels = self.metadata.get("source", {}).get("labels_csv")
        marker = Path(labels).parent / DERIVED_MARKER if labels else None
        if marker is None or not marker.exists():
            return {}
        info = json.loads(marker.read_text())
        return {"source_dataset": info["source_dataset"], "source_fingerprint": info["source_fingerprint"]}

    def describe(self) -> str:
        return f"{self.name} ({', '.join(f'{k} {v}' for k, v in sorted(self.splits.items()))})"


def _remove_stale_incomplete(config_dir: Path):
    """An interrupted build leaves a TFDS 'incomplete.*' folder beside the version folder."""
    if config_dir.is_dir():
        for stale in config_dir.glob("incomplete.*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)


ASIDE_PREFIX = "previous-"


def _aside(version_dir: Path) -> Path:
    """Where the previous build waits while it is rebuilt. No dots in the name: neither TFDS nor
    `_latest_version_dir` may take it for a version."""
    return version_dir.parent / f"{ASIDE_PREFIX}{version_dir.name.replace('.', '-')}"


def _recover_asides(config_dir: Path):
    """A rebuild killed before it finished leaves the previous build aside: put it back (its
    inputs are then checked again); one killed after it finished leaves a copy to delete."""
    for aside in config_dir.glob(f"{ASIDE_PREFIX}*"):
        version_dir = config_dir / aside.name[len(ASIDE_PREFIX):].replace("-", ".")
        if (version_dir / "dataset_info.json").exists():
            shutil.rmtree(aside, ignore_errors=True)
            continue
        if version_dir.exists():
            shutil.rmtree(version_dir)
        aside.rename(version_dir)


def _stale_reason(builder: tfds.core.DatasetBuilder, version_dir: Path, manual_dir) -> str | None:
    """Why the dataset built in `version_dir` does not match what `builder` would read now."""
    current = builder.current_inputs(manual_dir) if manual_dir is not None else None
    if current is None:  # phantoms (made by code), or no source given to compare with
        return None
    return signature_change(_read_metadata(version_dir).get("inputs"), current)


def _prepare(builder: tfds.core.DatasetBuilder, manual_dir, previous: Path | None):
    """Runs the TFDS build; on any failure (a bad input, a full disk, Ctrl-C) leaves no half-written
    folder and puts the `previous` build back where it was."""
    version_dir = Path(builder.data_dir)
    config = tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir) if manual_dir else None)
    try:
        builder.download_and_prepare(download_config=config)
    except BaseException:
        _remove_stale_incomplete(version_dir.parent)
        if previous is not None:
            if version_dir.exists():
                shutil.rmtree(version_dir, ignore_errors=True)
            previous.rename(version_dir)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def build(builder: tfds.core.DatasetBuilder, manual_dir=None, log=print) -> DataHandle:
    """Builds (if not yet built, or built from other inputs) and opens a dataset.

    Atomic: a rerun after a kill just works, and a failed rebuild keeps the previous build. A
    built dataset is reused only while `builder.current_inputs` (label files, image files,
    options) equals what its build recorded; otherwise it is rebuilt, saying why.
    """
    version_dir = Path(builder.data_dir)
    _recover_asides(version_dir.parent)
    name = f"{builder.name}/{builder.builder_config.name}"
    previous = None
    if (version_dir / "dataset_info.json").exists():
        reason = _stale_reason(builder, version_dir, manual_dir)
        if reason is None:
            return open_dataset(version_dir)
        log(f"Rebuilding dataset {name}: {reason}. The previous build is kept until the new one is complete.")
        previous = _aside(version_dir)
        version_dir.rename(previous)
        # A builder made while the old version existed has read that version's info and metadata.
        builder = type(builder)(config=builder.builder_config, data_dir=builder.data_dir_root)
    else:
        _remove_stale_incomplete(version_dir.parent)
        log(f"Building dataset {name} into {version_dir} ...")
    _prepare(builder, manual_dir, previous)
    return open_dataset(version_dir)


def open_dataset(version_dir) -> DataHandle:
    version_dir = Path(version_dir)
    if not (version_dir / "dataset_info.json").exists():
        raise DataError(f"No built dataset in {version_dir}")
    builder = tfds.builder_from_directory(os.fspath(version_dir))
    name = f"{version_dir.parent.parent.name}/{version_dir.parent.name}"
    return DataHandle(name=name, version_dir=version_dir, builder=builder, metadata=_read_metadata(version_dir))


def _read_metadata(version_dir: Path) -> dict:
    meta_path = version_dir / "metadata.json"
    return json.loads(meta_path.read_text()) if meta_path.exists() else {}


def open_built(name: str, data_dir=None) -> DataHandle | None:
    """The already built dataset called `name` ("folder/rsna-thumbs100", "phantoms/default"), or
    None; unlike `resolve`, it never builds anything."""
    built = _latest_version_dir(Path(data_dir or default_data_dir()) / name)
    return open_dataset(built) if built else None


def _latest_version_dir(config_dir: Path) -> Path | None:
    versions = sorted((p for p in config_dir.glob("*.*.*") if (p / "dataset_info.json").exists()),
                      key=lambda p: tuple(int(x) if x.isdigit() else 0 for x in p.name.split(".")))
    return versions[-1] if versions else None


def _built_metadata(config_dir: Path) -> dict:
    """metadata.json of the newest build in `config_dir`, {} if none."""
    _recover_asides(config_dir)
    built = _latest_version_dir(config_dir)
    return _read_metadata(built) if built else {}


def _check_same_folder(built: dict, source: Path, config_dir: Path):
    """A folder dataset is named after its folder: refuse to replace the build of another folder
    of the same name (that would silently switch the data under its runs)."""
    built_labels = built.get("source", {}).get("labels_csv")
    labels = source / "labels.csv"
    if built_labels and labels.exists() and Path(built_labels) != labels.resolve():
        raise DataError(f"folder/{config_dir.name} was built from {built_labels}, not {labels.resolve()}: two "
                        f"folders share the name {source.resolve().name!r}. Rename one, or delete {config_dir}.")


def _skip_bad(asked: bool | None, built: dict) -> bool:
    """`None` (commands without --skip-bad: train, evaluate) keeps the choice `prepare` built with,
    so that they reuse its dataset instead of rebuilding it strictly."""
    if asked is not None:
        return asked
    return bool(built.get("inputs", {}).get("options", {}).get("skip_bad", False))


# TensorFlow's writers raise ResourceExhaustedError (not an OSError) with the OS message; TFDS
# refuses to start on a disk with no space left at all with an errno-less IOError.
DISK_FULL_MESSAGES = ("No space left on device", "Disk quota exceeded", "Not enough disk space")


def is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(m in str(error) for m in DISK_FULL_MESSAGES)


def resolve(spec: str | None, data_dir=None, max_side: int = DEFAULT_MAX_SIDE, skip_bad: bool | None = None,
            log=print, rsna_labels: dict | None = None, split_column: str | None = None) -> DataHandle:
    """Turns a `--data` value into an opened dataset, building it first when needed, and again
    when its inputs changed. `skip_bad=None`: as the existing build chose (False for a new one).
    `split_column` (folder data): the labels column naming each row's split (default "split",
    and the id-hash split where the CSV has none)."""
    data_dir = Path(data_dir or default_data_dir())
    if not spec:
        if os.environ.get(RSNA_ENV):
            spec = f"rsna:{os.environ[RSNA_ENV]}"
            log(f"Using the RSNA download in ${RSNA_ENV}={os.environ[RSNA_ENV]}")
        else:
            spec = "phantoms"
            log(f"No RSNA data configured (set ${RSNA_ENV} or pass --data rsna:PATH): "
                "using synthetic hand phantoms.")
    kind, _, arg = spec.partition(":")
    if kind.startswith("phantoms"):
        config = kind.partition("/")[2] or "default"
        built = _latest_version_dir(data_dir / "phantoms" / config)
        if built:
            return open_dataset(built)
        if config not in {c.name for c in Phantoms.BUILDER_CONFIGS}:
            raise DataError(f"Unknown phantom set {config!r}; known: {[c.name for c in Phantoms.BUILDER_CONFIGS]}")
        return build(Phantoms(config=config, data_dir=data_dir), log=log)
    if kind == "rsna":
        source = arg or os.environ.get(RSNA_ENV)
        if not source:
            built = _latest_version_dir(data_dir / "rsna" / rsna_config(max_side).name)
            if built:
                return open_dataset(built)
            raise DataError(f"No RSNA download given: pass --data rsna:PATH or set ${RSNA_ENV}. "
                            + Rsna.MANUAL_DOWNLOAD_INSTRUCTIONS)
        root = Path(source).expanduser()
        if not root.is_dir():
            raise DataError(f"--data rsna:{source}: no such directory {root}. Expected the folder of your RSNA "
                            f"download. " + Rsna.MANUAL_DOWNLOAD_INSTRUCTIONS)
        labels = {f"{split}_labels": str(path) for split, path in (rsna_labels or {}).items() if path}
        skip_bad = _skip_bad(skip_bad, _built_metadata(data_dir / "rsna" / rsna_config(max_side).name))
        builder = Rsna(config=rsna_config(max_side, skip_bad=skip_bad, **labels), data_dir=data_dir)
        return build(builder, manual_dir=root, log=log)
    if kind == "folder" and arg:
        source = Path(arg).expanduser()
        if not source.is_dir():
            raise DataError(f"--data folder:{arg}: no such directory")
        config_dir = data_dir / "folder" / folder_config(source.resolve().name, max_side, split_column).name
        built = _built_metadata(config_dir)
        _check_same_folder(built, source, config_dir)
        config = folder_config(source.resolve().name, max_side, split_column, skip_bad=_skip_bad(skip_bad, built))
        return build(Folder(config=config, data_dir=data_dir), manual_dir=source, log=log)
    if kind.startswith(("rsna/", "folder/")) and not arg:
        return _open_named(kind, data_dir)
    raise DataError(f"Cannot read --data {spec!r}. Expected phantoms, phantoms/small, rsna[:PATH], "
                    "folder:PATH, or the name of a built dataset: rsna/CONFIG, folder/NAME, phantoms/CONFIG.")


def _open_named(name: str, data_dir: Path) -> DataHandle:
    """The built dataset called `name` ("rsna/default", "folder/NAME": what run records store), never
    built: the name alone does not say where its images are."""
    handle = open_built(name, data_dir)
    if handle is None:
        kind = name.partition("/")[0]
        raise DataError(f"No {kind} dataset {name!r} built in {data_dir}; build it first with --data {kind}:PATH "
                        "(and the same --data-dir), or pass that --data instead.")
    return handle
