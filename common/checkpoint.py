"""Kill-safe and disk-full-safe checkpoints for `train`: every weights file is written whole or not at all.

Keras's own `BackupAndRestore` and `ModelCheckpoint` write their `.weights.h5` in place: a
SIGKILL in the middle of that write (or a full disk) leaves a file that no rerun can open, and
`BackupAndRestore` then fails on every rerun. Here every file is written to a temporary name
beside its target and renamed over it once complete (a rename is atomic), and the backup keeps
the previous epoch as well, so that a backup damaged some other way is detected on resume and
the run falls back to the previous one, saying so.

    backup/epoch-0007.weights.h5   model + optimizer state after epoch 7 (the last KEEP epochs)
    checkpoints/last.weights.h5    the weights after the last finished epoch
    checkpoints/best.weights.h5    the weights of the best epoch by the task's monitored metric
"""
import contextlib
import io
import json
import os
import re
from pathlib import Path

import keras
import numpy as np

from common import io as kit_io

BACKUP_PATTERN = re.compile(r"^epoch-(\d+)\.weights\.h5$")
KEEP = 2  # the newest backup and the one before it


class _WeightsBuffer(io.BytesIO):
    """An in-memory `.weights.h5` file: Keras checks the name's suffix, h5py writes into memory."""

    def __str__(self):
        return "in-memory.weights.h5"


def save_weights_atomically(model, path):
    """`model.save_weights(path)`, whole or not at all.

    HDF5 writes into memory first and only plain Python writes the file (temporary name, fsync,
    rename: `common.io`): on a full disk h5py, writing a file itself, leaves half-closed HDF5
    objects behind that crash the interpreter (a segfault, measured); here the write fails with
    an ordinary OSError, the temporary file is removed and whatever was at `path` stays intact.
    """
    buffer = _WeightsBuffer()
    with without_distribution():
        model.save_weights(buffer)
    kit_io.atomic_write_bytes(path, buffer.getbuffer())


@contextlib.contextmanager
def without_distribution():
    """No keras.distribution while inside: what is built there lives on this process alone (also
    common.train's restore, which builds a process-local model). Saving needs it: Keras builds a reference optimizer while it saves
    (saving_lib.get_attr_skipset); under a distribution over several processes that optimizer's
    variable would be placed on every process's devices, a step the other processes (which never
    save: process 0 writes the run directory) never join, and the save would wait forever. The
    weights saved are read as they are, whatever the distribution."""
    current = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(current)


def remove_stale_temporaries(folder):
    """Temporary files of a write that a kill interrupted (`common.io` names them .NAME.*.tmp);
    never read, so safe to delete."""
    for stale in Path(folder).glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def backups(backup_dir) -> list[tuple[int, Path]]:
    """(epochs done, file) of every complete backup, newest first.

    Includes the backup of a run started before this module (keras.callbacks.BackupAndRestore's
    latest.weights.h5 beside its training_metadata.json), so that such a run resumes too.
    """
    backup_dir = Path(backup_dir)
    found = []
    for f in backup_dir.glob("epoch-*.weights.h5"):
        m = BACKUP_PATTERN.match(f.name)
        if m:
            found.append((int(m.group(1)), f))
    legacy = backup_dir / "latest.weights.h5"
    with contextlib.suppress(OSError, ValueError, KeyError):
        if legacy.exists():
            found.append((int(json.loads((backup_dir / "training_metadata.json").read_text())["epoch"]), legacy))
    return sorted(found, key=lambda item: (item[0], item[1].name.startswith("epoch-")), reverse=True)


class EpochBackup(keras.callbacks.Callback):
    """Saves model and optimizer state after every epoch as backup/epoch-NNNN.weights.h5 (atomic),
    keeping the last `keep`, for `restore` to resume from after any interruption."""

    def __init__(self, backup_dir, keep: int = KEEP):
        super().__init__()
        if keep < 1:
            raise ValueError(f"keep must be >= 1. Received: keep={keep}")
        self.backup_dir, self.keep = Path(backup_dir), keep

    def on_epoch_end(self, epoch, logs=None):
        save_weights_atomically(self.model, self.backup_dir / f"epoch-{epoch + 1:04d}.weights.h5")
        # Older backups go only after the new one is complete: at every instant at least one whole
        # backup (and, after two epochs, two) exists.
        for _, old in backups(self.backup_dir)[self.keep:]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()


def model_state(model) -> list:
    """The weights and optimizer state of a compiled model, as NumPy arrays (what a backup holds)."""
    return [v.numpy() for v in model.weights] + [v.numpy() for v in model.optimizer.variables]


def set_model_state(model, values):
    for v, value in zip(list(model.weights) + list(model.optimizer.variables), values):
        v.assign(value)


def restore(model, backup_dir, log=print) -> int:
    """Loads the newest readable backup into a compiled `model` (weights and optimizer state).

    Returns the number of epochs it holds (0: start from the beginning). An unreadable backup
    (cut short, overwritten, from another network) is renamed `*.unreadable` (kept for a look,
    never read again) and the previous one is tried, with a message saying so.
    """
    backup_dir = Path(backup_dir)
    if not backup_dir.is_dir():
        return 0
    remove_stale_temporaries(backup_dir)
    candidates = backups(backup_dir)
    if not candidates:
        return 0
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    fresh = model_state(model)  # a failed load may have assigned some variables: undo it before the next try
    for epochs, path in candidates:
        try:
            model.load_weights(path)
        except Exception as e:  # h5py raises OSError, Keras ValueError/KeyError for missing or odd objects
            set_model_state(model, fresh)
            reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            aside = path.with_name(path.name + ".unreadable")
            os.replace(path, aside)
            log(f"WARNING: the backup after epoch {epochs} ({path}) is unreadable ({type(e).__name__}: {reason}); "
                f"kept as {aside.name}. Falling back to the previous backup.")
            continue
        log(f"Resuming after epoch {epochs} from {path}.")
        return epochs
    log(f"WARNING: no readable backup in {backup_dir}: training starts again from epoch 1.")
    return 0


class WeightsCheckpoint(keras.callbacks.Callback):
    """The weights after every epoch (monitor None) or of the best epoch by `monitor`, written atomically.

    `best_so_far` carries the best value of the epochs before a resume, so that a resumed run
    overwrites best.weights.h5 only with a better epoch.
    """

    def __init__(self, path, monitor=None, mode="min", best_so_far=None):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max'. Received: mode={mode!r}")
        self.path, self.monitor, self.mode, self.best = Path(path), monitor, mode, best_so_far

    def _improved(self, value) -> bool:
        if value is None or not np.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor is None:
            save_weights_atomically(self.model, self.path)
            return
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise KeyError(f"{self.monitor!r} is not among this epoch's metrics {sorted(logs or {})}: it picks "
                           f"{self.path.name}. Check the task's monitor.")
        if self._improved(float(value)):
            save_weights_atomically(self.model, self.path)
            self.best = float(value)
