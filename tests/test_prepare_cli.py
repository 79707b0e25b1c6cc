"""`python -m common.prepare`: clear errors with exit code 2, nothing written, nothing lost."""
import errno
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from common import data, prepare
from common.datasets import base
from conftest import ROOT, SUBPROCESS_TIMEOUT_S, write_image_folder

ROWS = [{"id": str(i), "boneage": 10 + i, "male": i % 2} for i in range(12)]


def run(*args, data_dir):
    return subprocess.run([sys.executable, "-m", "common.prepare", *args, "--data-dir", str(data_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)


def test_bad_csv_exits_2_with_message(make_folder, tmp_path):
    src = make_folder([{"id": "1", "boneage": 10, "male": True}], columns={"male": "gender_code"})
    result = run(f"folder:{src}", data_dir=tmp_path / "ds")
    assert result.returncode == 2
    assert "missing column" in result.stderr and "gender_code" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "ds").rglob("*.tfrecord*"))


def test_builds_folder_and_prints_fingerprint(make_folder, tmp_path):
    src = make_folder(ROWS)
    result = run(f"folder:{src}", data_dir=tmp_path / "ds")
    assert result.returncode == 0, result.stderr
    assert "Ready: folder/src" in result.stdout and "Fingerprint:" in result.stdout
    assert len(list((tmp_path / "ds").rglob("*.tfrecord-*-of-*"))) >= 1
    assert len(pd.read_csv(src / "labels.csv")) == 12


# --- a full disk: one message, exit 2, the previous build intact -----------------------------

def add_row(src, example_id="100"):
    """A new image and its label: the next prepare must rebuild."""
    write_image_folder(src, [{"id": example_id}], seed=1)
    labels = pd.read_csv(src / "labels.csv", dtype=str)
    pd.concat([labels, pd.DataFrame([{"id": example_id, "boneage": "50", "male": "1"}])]).to_csv(
        src / "labels.csv", index=False)


def assert_previous_build_intact(data_dir, before):
    kept = data.open_built("folder/src", data_dir)
    assert kept is not None and kept.fingerprint() == before
    config_dir = data_dir / "folder" / "src"
    assert sorted(p.name for p in config_dir.iterdir()) == [kept.version_dir.name]  # no incomplete.*, previous-*


def disk_full_errors():
    import tensorflow as tf
    return [OSError(errno.ENOSPC, "No space left on device"),
            tf.errors.ResourceExhaustedError(None, None, "/data/x.tfrecord; No space left on device")]


@pytest.mark.parametrize("error", disk_full_errors(), ids=["OSError", "tf.ResourceExhaustedError"])
def test_a_full_disk_while_writing_is_one_message(make_folder, tmp_path, monkeypatch, capsys, error):
    src, ds = make_folder(ROWS), tmp_path / "ds"
    assert prepare.main([f"folder:{src}", "--data-dir", str(ds)]) == 0
    before = data.open_built("folder/src", ds).fingerprint()
    add_row(src)
    real = base.BoneAgeBuilder._generate_from_records

    def fills_the_disk(self, split, records):
        yield from list(real(self, split, records))[:2]  # a few examples written, then the disk is full
        raise error

    monkeypatch.setattr(base.BoneAgeBuilder, "_generate_from_records", fills_the_disk)
    capsys.readouterr()
    assert prepare.main([f"folder:{src}", "--data-dir", str(ds)]) == 2
    err = capsys.readouterr().err
    assert "error: the disk is full" in err and "rerun the same command" in err and err.count("error:") == 1
    assert_previous_build_intact(ds, before)
    monkeypatch.undo()
    assert prepare.main([f"folder:{src}", "--data-dir", str(ds)]) == 0
    assert sum(data.open_built("folder/src", ds).splits.values()) == len(ROWS) + 1


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs, unmounted afterwards; skipped where mounting is not allowed (not root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not shutil.which("mount"):
        pytest.skip("no mount command: cannot make a small disk to fill")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a 2 MB tmpfs to fill (needs root): {result.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk, leave_kb):
    """Writes a filler file until the disk is full, then frees `leave_kb`; returns the filler."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:  # unbuffered: no failed flush left for close()
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    os.truncate(filler, max(0, filler.stat().st_size - leave_kb * 1024))
    return filler


# Nothing left: TFDS refuses to start. 12 KB left: the shards are half-written when it runs out.
@pytest.mark.parametrize("leave_kb", [0, 12])
def test_a_really_full_disk_exits_2_keeps_the_build_and_resumes(make_folder, small_disk, leave_kb):
    src, ds = make_folder(ROWS), small_disk / "ds"
    assert run(f"folder:{src}", data_dir=ds).returncode == 0
    before = data.open_built("folder/src", ds).fingerprint()
    add_row(src)
    filler = fill(small_disk, leave_kb)
    result = run(f"folder:{src}", data_dir=ds)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: the disk is full" in result.stderr and "Traceback" not in result.stderr
    assert_previous_build_intact(ds, before)
    filler.unlink()
    result = run(f"folder:{src}", data_dir=ds)
    assert result.returncode == 0, result.stderr
    assert sum(data.open_built("folder/src", ds).splits.values()) == len(ROWS) + 1
