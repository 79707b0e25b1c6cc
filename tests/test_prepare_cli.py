"""`python -m common.prepare`: clear errors with exit code 2, nothing written."""
import subprocess
import sys

import pandas as pd

from conftest import ROOT


def run(*args, data_dir):
    return subprocess.run([sys.executable, "-m", "common.prepare", *args, "--data-dir", str(data_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_bad_csv_exits_2_with_message(make_folder, tmp_path):
    src = make_folder([{"id": "1", "boneage": 10, "male": True}], columns={"male": "gender_code"})
    result = run(f"folder:{src}", data_dir=tmp_path / "ds")
    assert result.returncode == 2
    assert "missing column" in result.stderr and "gender_code" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "ds").rglob("*.tfrecord*"))


def test_builds_folder_and_prints_fingerprint(make_folder, tmp_path):
    rows = [{"id": str(i), "boneage": 10 + i, "male": i % 2} for i in range(12)]
    src = make_folder(rows)
    result = run(f"folder:{src}", data_dir=tmp_path / "ds")
    assert result.returncode == 0, result.stderr
    assert "Ready: folder/src" in result.stdout and "Fingerprint:" in result.stdout
    assert len(list((tmp_path / "ds").rglob("*.tfrecord-*-of-*"))) >= 1
    assert len(pd.read_csv(src / "labels.csv")) == 12
