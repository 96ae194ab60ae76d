"""Shared helpers for the awqkit tests: where the repository's data and the `awq` binary are, and a
small safetensors reader (numpy only, so the tests need no package beyond Debian's python3-numpy)."""
import json
import os
import pathlib
import struct
import subprocess

import numpy as np
import pytest

SOURCE_DIR = pathlib.Path(os.environ.get("AWQ_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
DATA = SOURCE_DIR / "tests" / "data"
AWQ = os.environ.get("AWQ_BINARY", str(SOURCE_DIR / "build" / "release" / "awq"))

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I32": np.int32, "I64": np.int64,
           "U8": np.uint8, "I8": np.int8}


def read_safetensors(path):
    """{name: numpy array} of a .safetensors file (BF16 as its uint16 bits)."""
    raw = pathlib.Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=_DTYPES[t["dtype"]]).reshape(t["shape"])
    return out


def awq(*args):
    """Runs the awq command; returns its stdout, fails the test on a non-zero exit."""
    r = subprocess.run([AWQ, *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, f"awq {' '.join(map(str, args))}: exit {r.returncode}\n{r.stderr}"
    return r.stdout


@pytest.fixture(scope="session")
def awq_binary():
    if not os.path.exists(AWQ):
        pytest.fail(f"no awq binary at {AWQ} (set AWQ_BINARY)")
    return AWQ
