"""Reading PyTorch state dicts without PyTorch, and refusing a checkpoint that would run code.

The files are written here with the standard pickle module in torch's legacy layout (a stand-in
`torch` module supplies the names the pickle refers to), so these tests need no PyTorch.
"""
import collections
import os
import pickle
import struct
import sys
import types

import numpy as np
import pytest

from common.torch_checkpoint import LEGACY_MAGIC, UnsafeCheckpointError, read_state_dict


@pytest.fixture()
def fake_torch(monkeypatch):
    """Stand-ins registered as `torch` and `torch._utils`, so that pickle writes the names torch writes."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass
    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called when writing")
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2, torch._utils = FloatStorage, _rebuild_tensor_v2, utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class _Storage:
    def __init__(self, key, data):
        self.key, self.data = key, np.ascontiguousarray(data, np.float32).reshape(-1)


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)

    def __reduce__(self):
        storage, offset, size, stride = self.args
        return sys.modules["torch._utils"]._rebuild_tensor_v2, (storage, offset, size, stride, False,
                                                                 collections.OrderedDict())


def write_legacy(path, tensors: dict, storages: list, torch):
    """torch's legacy `torch.save` layout: five pickles, then each storage's element count and bytes."""
    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True, "type_sizes": {}}):
            pickle.dump(header, f, protocol=2)
        pickler = pickle.Pickler(f, protocol=2)
        pickler.persistent_id = lambda obj: (("storage", torch.FloatStorage, obj.key, "cpu", obj.data.size)
                                             if isinstance(obj, _Storage) else None)
        pickler.dump(collections.OrderedDict(tensors))
        pickle.dump(sorted(s.key for s in storages), f, protocol=2)
        for s in sorted(storages, key=lambda s: s.key):
            f.write(struct.pack("<q", s.data.size) + s.data.tobytes())


def test_reads_tensors_with_offsets_and_permuted_strides(tmp_path, fake_torch):
    hwio = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    s1, s2 = _Storage("0", hwio), _Storage("1", np.arange(10))
    # An OIHW view of HWIO memory (what a checkpoint converted from TensorFlow holds) and a slice.
    conv = _Tensor(s1, 0, (5, 4, 2, 3), (1, 5, 60, 20))
    bias = _Tensor(s2, 4, (3,), (1,))
    write_legacy(tmp_path / "m.pth", {"conv.weight": conv, "fc.bias": bias}, [s1, s2], fake_torch)
    state = read_state_dict(tmp_path / "m.pth")
    assert list(state) == ["conv.weight", "fc.bias"]
    np.testing.assert_array_equal(state["conv.weight"], hwio.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(state["fc.bias"], [4, 5, 6])
    assert state["conv.weight"].flags["C_CONTIGUOUS"] and state["conv.weight"].flags["WRITEABLE"]


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_would_run_a_command_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump(collections.OrderedDict(w=_RunsACommand(marker)), f, protocol=2)
    with pytest.raises(UnsafeCheckpointError, match=r"(posix|os)\.system"):
        read_state_dict(path)
    assert not marker.exists()
    # The same as a bare pickle (no torch header at all).
    path.write_bytes(pickle.dumps(_RunsACommand(marker), protocol=2))
    with pytest.raises(UnsafeCheckpointError):
        read_state_dict(path)
    assert not marker.exists()


def test_damaged_files_are_errors_not_crashes(tmp_path, fake_torch):
    s = _Storage("0", np.arange(6))
    write_legacy(tmp_path / "m.pth", {"w": _Tensor(s, 0, (6,), (1,))}, [s], fake_torch)
    data = (tmp_path / "m.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[:-8])
    with pytest.raises(ValueError, match="cut short"):
        read_state_dict(tmp_path / "cut.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x00\x01 not a pickle")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        read_state_dict(tmp_path / "junk.pth")
