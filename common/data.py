"""Naming, building and opening datasets: what `--data` means everywhere in the kit.

    --data phantoms              synthetic hands (built on first use, ~1 min)
    --data phantoms/small        a smaller, 128 px phantom set for CPU smoke runs
    --data rsna:PATH             the RSNA download in PATH (built on first use)
    --data rsna                  the RSNA download in $BONEAGE_RSNA_DIR, or an rsna already built
    --data folder:PATH           a directory of images + labels.csv (built on first use)
    --data folder/NAME           a folder dataset built before under that name
    (none)                       rsna if $BONEAGE_RSNA_DIR is set, else phantoms (and says so)

Built datasets live in $BONEAGE_DATA_DIR (default ~/.boneage-repro/datasets), never in the repo.
"""
import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import tensorflow_datasets as tfds

from common.datasets import Folder, Phantoms, Rsna
from common.datasets.base import DEFAULT_MAX_SIDE, DataError
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


def build(builder: tfds.core.DatasetBuilder, manual_dir=None, log=print) -> DataHandle:
    """Builds (if not yet built) and opens a dataset. Atomic: a rerun after a kill just works."""
    data_dir = Path(builder.data_dir_root)
    if not Path(builder.data_dir, "dataset_info.json").exists():
        _remove_stale_incomplete(Path(builder.data_dir).parent)
        log(f"Building dataset {builder.name}/{builder.builder_config.name} into {builder.data_dir} ...")
        config = tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir) if manual_dir else None)
        builder.download_and_prepare(download_config=config)
    return open_dataset(Path(builder.data_dir))


def open_dataset(version_dir) -> DataHandle:
    version_dir = Path(version_dir)
    if not (version_dir / "dataset_info.json").exists():
        raise DataError(f"No built dataset in {version_dir}")
    builder = tfds.builder_from_directory(os.fspath(version_dir))
    meta_path = version_dir / "metadata.json"
    metadata = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    name = f"{version_dir.parent.parent.name}/{version_dir.parent.name}"
    return DataHandle(name=name, version_dir=version_dir, builder=builder, metadata=metadata)


def open_built(name: str, data_dir=None) -> DataHandle | None:
    """The already built dataset called `name` ("folder/rsna-thumbs100", "phantoms/default"), or
    None; unlike `resolve`, it never builds anything."""
    built = _latest_version_dir(Path(data_dir or default_data_dir()) / name)
    return open_dataset(built) if built else None


def _latest_version_dir(config_dir: Path) -> Path | None:
    versions = sorted((p for p in config_dir.glob("*.*.*") if (p / "dataset_info.json").exists()),
                      key=lambda p: tuple(int(x) if x.isdigit() else 0 for x in p.name.split(".")))
    return versions[-1] if versions else None


def _check_same_source(handle: DataHandle, source: Path):
    """A built folder dataset is reused only for the same folder and the same labels file."""
    built = handle.metadata.get("source", {})
    labels = source / "labels.csv"
    now = {"images_dir": None, "labels_sha256": hashlib.sha256(labels.read_bytes()).hexdigest() if labels.exists() else None}
    if built.get("labels_sha256") and now["labels_sha256"] and built["labels_sha256"] != now["labels_sha256"]:
        raise DataError(f"{handle.name} was built from a different labels.csv than {labels} has now "
                        f"(built from {built.get('labels_csv')}). Delete {handle.version_dir} to rebuild it, or "
                        f"rename the folder.")
    if built.get("labels_csv") and labels.exists() and Path(built["labels_csv"]) != labels.resolve():
        raise DataError(f"{handle.name} was built from {built['labels_csv']}, not {labels.resolve()}: two folders "
                        f"share the name {source.resolve().name!r}. Rename one, or delete {handle.version_dir}.")


def resolve(spec: str | None, data_dir=None, max_side: int = DEFAULT_MAX_SIDE, skip_bad: bool = False,
            log=print, rsna_labels: dict | None = None) -> DataHandle:
    """Turns a `--data` value into an opened dataset, building it first when needed."""
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
        labels = {f"{split}_labels": str(path) for split, path in (rsna_labels or {}).items() if path}
        builder = Rsna(config=rsna_config(max_side, skip_bad=skip_bad, **labels), data_dir=data_dir)
        return build(builder, manual_dir=Path(source).expanduser(), log=log)
    if kind == "folder" and arg:
        source = Path(arg).expanduser()
        if not source.is_dir():
            raise DataError(f"--data folder:{arg}: no such directory")
        builder = Folder(config=folder_config(source.resolve().name, max_side, skip_bad=skip_bad), data_dir=data_dir)
        handle = build(builder, manual_dir=source, log=log)
        _check_same_source(handle, source)
        return handle
    if kind.startswith("folder/"):
        built = _latest_version_dir(data_dir / "folder" / kind.partition("/")[2])
        if built:
            return open_dataset(built)
        raise DataError(f"No folder dataset {kind!r} in {data_dir}; build it with --data folder:PATH")
    raise DataError(f"Cannot read --data {spec!r}. Expected phantoms, phantoms/small, rsna[:PATH], "
                    "folder:PATH or folder/NAME.")
