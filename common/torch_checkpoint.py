"""Reading the tensors of a PyTorch checkpoint (`torch.save` of a state dict) without PyTorch,
and without running any code the file asks for.

A `.pth` file is a pickle, and unpickling runs whatever callables the file names: a hostile
file can run a shell command. This reader lets the file name only the few things a state dict
of tensors is made of (an OrderedDict, the tensor-rebuild function, the storage types) and
refuses anything else, naming it, before it is called. The storages are then read as raw bytes
into NumPy arrays.

Two layouts exist: the legacy one (torch < 1.6, and `_use_new_zipfile_serialization=False`):
five pickles in a row (magic number, protocol version, system info, the object, the storage
keys) followed by each storage as an int64 element count and its raw bytes; and the zip one
(torch >= 1.6): `<name>/data.pkl` with each storage in `<name>/data/<key>`.
"""
import collections
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch storage class -> NumPy dtype.
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(ValueError):
    """The checkpoint names a callable outside the allow-list: it is not loaded."""


class _Storage:
    """Stands in for a torch storage until its bytes are read."""

    def __init__(self, key: str, dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel


class _TensorRef:
    """A tensor as the pickle describes it: a view (offset, size, stride) into a storage."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self, buffers: dict) -> np.ndarray:
        flat = buffers[self.storage.key]
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.size,
                                               strides=tuple(s * itemsize for s in self.stride))
        return np.array(view, order="C")  # a copy: C-contiguous, writable, owning its memory


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor(_v2)'s arguments; requires_grad, hooks and metadata do not matter here."""
    return _TensorRef(storage, storage_offset, size, stride)


class _StorageType:
    def __init__(self, name):
        self.name = name


class _RestrictedUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeCheckpointError(
            f"the checkpoint asks to call {module}.{name}, which a state dict of tensors never needs; refusing to "
            f"load it (only {sorted(f'{m}.{n}' for m, n in self.ALLOWED)} and torch.*Storage are allowed)")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, numel[, view metadata]); in the zip layout the
        # storage type may be torch.UntypedStorage with the dtype given separately: not supported.
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UnsafeCheckpointError(f"unexpected persistent id in the checkpoint: {pid!r:.120}")
        return _Storage(str(pid[2]), STORAGE_DTYPES[pid[1].name], int(pid[4]))


def _collect_storages(obj) -> dict:
    return {ref.storage.key: ref.storage for ref in obj.values() if isinstance(ref, _TensorRef)}


def _materialise(obj, buffers) -> dict[str, np.ndarray]:
    tensors = {}
    for name, value in obj.items():
        if not isinstance(value, _TensorRef):
            raise UnsafeCheckpointError(f"entry {name!r} is a {type(value).__name__}, not a tensor: not a state dict")
        tensors[name] = value.materialise(buffers)
    return tensors


def _read_legacy(f) -> dict[str, np.ndarray]:
    magic = _RestrictedUnpickler(f).load()
    if magic != LEGACY_MAGIC:
        raise ValueError("not a PyTorch checkpoint (wrong magic number)")
    _RestrictedUnpickler(f).load()          # protocol version
    sys_info = _RestrictedUnpickler(f).load()
    if not sys_info.get("little_endian", True):
        raise ValueError("a big-endian PyTorch checkpoint is not supported")
    obj = _RestrictedUnpickler(f).load()
    keys = _RestrictedUnpickler(f).load()
    storages = _collect_storages(obj)
    buffers = {}
    for key in keys:
        (numel,) = struct.unpack("<q", f.read(8))
        dtype = storages[key].dtype if key in storages else np.uint8
        data = f.read(numel * np.dtype(dtype).itemsize)
        if len(data) != numel * np.dtype(dtype).itemsize:
            raise ValueError(f"the checkpoint is cut short (storage {key})")
        buffers[key] = np.frombuffer(data, dtype=dtype)
    return _materialise(obj, buffers)


def _read_zip(path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as z:
        (pkl,) = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        root = pkl[: -len("data.pkl")]
        with z.open(pkl) as f:
            obj = _RestrictedUnpickler(f).load()
        buffers = {key: np.frombuffer(z.read(f"{root}data/{key}"), dtype=s.dtype)
                   for key, s in _collect_storages(obj).items()}
    return _materialise(obj, buffers)


def read_state_dict(path) -> dict[str, np.ndarray]:
    """{parameter name: array} of a PyTorch state-dict checkpoint, in the file's order.

    Raises UnsafeCheckpointError when the file names anything but tensors (nothing it names is
    called), ValueError when it is not a readable checkpoint.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    with open(path, "rb") as f:
        try:
            return _read_legacy(f)
        except (pickle.UnpicklingError, EOFError, struct.error) as e:
            raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from e
