"""Checkpoints that survive a kill at any instant and a full disk (common/checkpoint.py).

Unit tests on a two-layer model in-process; then the real `train` command on the tiny test task
(conftest.TINY_TASK) killed with SIGKILL in the middle of a backup write, and run on a full disk.
"""
import contextlib
import errno
import json
import os
import signal
import subprocess
import textwrap
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from common import checkpoint
from common import io as kit_io


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def _fit(model, seed):
    rng = np.random.default_rng(seed)
    model.fit(rng.normal(size=(8, 3)), rng.normal(size=(8, 2)), verbose=0)
    return [w.copy() for w in model.get_weights()]


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    model = _model()
    target = tmp_path / "last.weights.h5"
    checkpoint.save_weights_atomically(model, target)
    before = target.read_bytes()
    _fit(model, 1)

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(kit_io.os, "fsync", full_disk)
    with pytest.raises(OSError) as e:
        checkpoint.save_weights_atomically(model, target)
    assert e.value.errno == errno.ENOSPC
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.weights.h5"]


def test_restore_falls_back_to_the_previous_backup_when_the_newest_is_damaged(tmp_path):
    model = _model()
    backup = checkpoint.EpochBackup(tmp_path / "backup")
    backup.set_model(model)
    weights = {}
    for epoch in range(3):
        weights[epoch + 1] = _fit(model, epoch)
        backup.on_epoch_end(epoch)
    # Only the last two are kept.
    assert [e for e, _ in checkpoint.backups(tmp_path / "backup")] == [3, 2]
    newest = tmp_path / "backup" / "epoch-0003.weights.h5"
    newest.write_bytes(newest.read_bytes()[:500])  # cut short, as a damaged disk or a copy might leave it

    fresh, messages = _model(seed=7), []
    assert checkpoint.restore(fresh, tmp_path / "backup", log=messages.append) == 2
    for got, expected in zip(fresh.get_weights(), weights[2]):
        np.testing.assert_allclose(got, expected)
    assert int(fresh.optimizer.iterations) == 2  # the optimizer state came back too
    assert any("after epoch 3" in m and "unreadable" in m and "previous" in m for m in messages), messages
    assert (tmp_path / "backup" / "epoch-0003.weights.h5.unreadable").exists()  # kept for a look, not read again


def test_restore_with_no_readable_backup_starts_over_from_untouched_weights(tmp_path):
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "epoch-0001.weights.h5").write_bytes(b"not an HDF5 file")
    (tmp_path / "backup" / ".epoch-0002.weights.h5.abc.tmp").write_bytes(b"half")  # a write a kill cut short
    model, messages = _model(seed=3), []
    initial = [w.copy() for w in model.get_weights()]
    assert checkpoint.restore(model, tmp_path / "backup", log=messages.append) == 0
    for got, expected in zip(model.get_weights(), initial):
        np.testing.assert_array_equal(got, expected)
    assert "starts again from epoch 1" in messages[-1]
    assert not list((tmp_path / "backup").glob(".*.tmp"))


def test_best_checkpoint_is_written_only_for_a_better_epoch(tmp_path):
    model = _model()
    best = checkpoint.WeightsCheckpoint(tmp_path / "best.weights.h5", monitor="val_mae", best_so_far=5.0)
    best.set_model(model)
    best.on_epoch_end(0, {"val_mae": 6.0})          # worse than the epochs before a resume
    assert not (tmp_path / "best.weights.h5").exists()
    best.on_epoch_end(1, {"val_mae": 4.0})
    written = (tmp_path / "best.weights.h5").stat().st_mtime_ns
    best.on_epoch_end(2, {"val_mae": float("nan")})
    assert (tmp_path / "best.weights.h5").stat().st_mtime_ns == written and best.best == 4.0
    with pytest.raises(KeyError, match="val_dice"):
        checkpoint.WeightsCheckpoint(tmp_path / "b.weights.h5", monitor="val_dice").on_epoch_end(0, {"val_mae": 1})


# ----------------------------------------------------------------------------- the train command
# The tiny task with a kill inserted: when the backup of epoch KILL_AT is being written, half of
# its bytes reach the temporary file and the process gets SIGKILL (no handler runs).
KILLED_DURING_BACKUP = textwrap.dedent('''
    import os, signal, sys
    from pathlib import Path

    from common import io as kit_io
    import tiny_task

    KILL_AT = {kill_at}
    real = kit_io.atomic_write_bytes

    def write_then_die(path, data):
        if Path(path).name == "epoch-%04d.weights.h5" % KILL_AT:
            with kit_io.atomic_path(path) as tmp:
                Path(tmp).write_bytes(bytes(data)[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
        return real(path, data)

    kit_io.atomic_write_bytes = write_then_die
    sys.exit(tiny_task.main(tiny_task.TASK))
''')


@pytest.mark.parametrize("kill_at", [1, 3])
def test_kill_during_the_backup_write_resumes(tiny_task, tmp_path, kill_at):
    run, data = tiny_task
    (tmp_path / "killed.py").write_text(KILLED_DURING_BACKUP.replace("{kill_at}", str(kill_at)))
    out = tmp_path / "run"
    args = ["train", "--data", data, "--out", str(out), "--epochs", "5", "--no-eval"]
    killed = run(*args, script="killed.py")
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert list((out / "backup").glob(".*.tmp")), "the kill should have left a half-written temporary file"

    resumed = run(*args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    if kill_at == 1:  # nothing was saved yet: it starts from the beginning, without an error
        assert "Epoch 1/5" in resumed.stdout
    else:
        assert f"Resuming after epoch {kill_at - 1}" in resumed.stdout
        assert f"Epoch {kill_at}/5" in resumed.stdout and "Epoch 1/5" not in resumed.stdout
    assert not list((out / "backup").glob(".*.tmp"))
    assert [e for e, _ in checkpoint.backups(out / "backup")] == [5, 4]
    assert sorted(pd.read_csv(out / "metrics.csv")["epoch"].unique()) == list(range(5))
    assert json.loads((out / "run.json").read_text())["status"] == "trained"


# The tiny task whose checkpoints/best.weights.h5 write after epoch 1 finds the disk full: the backup of
# epoch 1 (written first) is complete, the best epoch's own checkpoint is not.
BEST_WRITE_FAILS = textwrap.dedent('''
    import errno, sys
    from pathlib import Path

    from common import io as kit_io
    import tiny_task

    real = kit_io.atomic_write_bytes

    def disk_full_for_best(path, data):
        if Path(path).name == "best.weights.h5":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    kit_io.atomic_write_bytes = disk_full_for_best
    sys.exit(tiny_task.main(tiny_task.TASK))
''')


def _weights(path) -> dict:
    import h5py
    found = {}
    with h5py.File(path, "r") as f:
        f["layers"].visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                               else None)
    return found


def test_a_best_checkpoint_cut_short_after_its_backup_is_written_from_the_backup_on_resume(tiny_task, tmp_path):
    """Between an epoch's backup and its best checkpoint a kill or a full disk loses that epoch's best
    weights unless the resumed run writes them from the backup it restores (it counts the epoch as the
    best so far and would never write it again)."""
    run, data = tiny_task
    (tmp_path / "best_fails.py").write_text(BEST_WRITE_FAILS)
    out = tmp_path / "run"
    args = ["train", "--data", data, "--out", str(out), "--epochs", "1", "--no-eval"]
    failed = run(*args, script="best_fails.py")
    assert failed.returncode == 2 and "disk is full" in failed.stderr, failed.stdout + failed.stderr
    assert (out / "backup" / "epoch-0001.weights.h5").exists()
    assert not (out / "checkpoints" / "best.weights.h5").exists()

    resumed = run(*args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (out / "checkpoints" / "best.weights.h5").exists(), resumed.stdout
    assert "checkpoints/best.weights.h5 was missing" in resumed.stdout, resumed.stdout
    best, backup = _weights(out / "checkpoints" / "best.weights.h5"), _weights(out / "backup" / "epoch-0001.weights.h5")
    assert best and best.keys() == backup.keys()
    assert all(np.array_equal(best[k], backup[k]) for k in best)
    assert json.loads((out / "run.json").read_text())["best_epoch"] == 1


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill ({mounted.stderr.strip() or 'mount failed'}): "
                    "needs root, as in CI")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(disk: Path, leave_kib: int) -> Path:
    free_kib = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize // 1024
    filler = disk / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free_kib - leave_kib) * 1024)
    return filler


def test_a_full_disk_during_training_is_one_message_and_the_rerun_resumes(tiny_task, tmp_path):
    run, data = tiny_task
    with small_tmpfs(tmp_path / "disk", "4m") as disk:
        out = disk / "run"
        first = run("train", "--data", data, "--out", str(out), "--epochs", "2", "--no-eval")
        assert first.returncode == 0, first.stdout + first.stderr
        filler = _fill(disk, leave_kib=12)  # less than one weights file (~26 KiB)
        full = run("train", "--data", data, "--out", str(out), "--epochs", "5", "--no-eval")
        assert full.returncode == 2, full.stdout + full.stderr   # not a crash (h5py segfaulted here: 139)
        assert "disk is full" in full.stderr and "Traceback" not in full.stdout + full.stderr
        assert [e for e, _ in checkpoint.backups(out / "backup")] == [2, 1]
        filler.unlink()
        again = run("train", "--data", data, "--out", str(out), "--epochs", "5", "--no-eval")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "Resuming after epoch 2" in again.stdout and "unreadable" not in again.stdout
        assert json.loads((out / "run.json").read_text())["epochs_done"] == 5
