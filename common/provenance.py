"""Where a number came from: code version, libraries, hardware, time. Written into every run record."""
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> dict:
    """The commit of the code that ran, and whether the working tree had uncommitted changes."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": "unknown (not a git checkout)", "dirty": None}
        # Dirty = uncommitted changes to code (generated READMEs and results do not count).
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "*.py", "pyproject.toml")
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown (git not available)", "dirty": None}


def library_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in ("keras", "tensorflow", "tensorflow_datasets", "numpy", "jax", "torch", "cv2", "pandas"):
        module = sys.modules.get(name)
        if module is None and name in ("keras", "numpy"):
            module = __import__(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    return versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def accelerators() -> list[str]:
    """Names of visible GPUs for the active Keras backend (empty on CPU)."""
    import keras
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf
            return [tf.config.experimental.get_device_details(d).get("device_name", d.name)
                    for d in tf.config.list_physical_devices("GPU")]
        if backend == "jax":
            import jax
            return [d.device_kind for d in jax.devices() if d.platform != "cpu"]
        if backend == "torch":
            import torch
            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a broken driver must not stop a run from being recorded
        return []
    return []


def hardware() -> dict:
    gpus = accelerators()
    return {
        "device": f"{len(gpus)}x {gpus[0]}" if gpus else f"CPU ({os.cpu_count()} cores)",
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "gpus": gpus,
        "host": platform.node(),
        "keras_backend": __import__("keras").backend.backend(),
    }
