#!/usr/bin/env python3
"""Reference (numpy-only) decoders for 4-bit AWQ-style checkpoint layouts.

Written from /work/shared/reference/FORMATS.md (sections 1, 2, 8), NOT copied
from any peer implementation.  tools/make_golden_awq.py validates the GEMM
decoder bit-for-bit against AutoAWQ's own ``awq.utils.packing_utils.
dequantize_gemm`` and the GEMV_fast unpacker against AutoAWQ's own
``pack_intweight`` before using these functions to write expected weights.

Layout: one function per format, each returning the dense nn.Linear weight
W[N, K] (row = output feature, column = input feature) in the scales dtype.
A small registry (FORMATS) maps the format name used in meta.json to
(decoder, tensor suffixes).  Other decoders (compressed-tensors, GPTQ,
ModelOpt, ...) can be added the same way.

Rounding rules (FORMATS.md section 11, item 3):
  * GEMM / GEMV:  w = RNE_f16( f32(s) * f32(q - z) )     (exact product, one rounding)
  * GEMV_fast:    w = RNE_f16( f32(q) * f32(s) + f32(sz) ) (exact in f32, one rounding)

Usage:
  python tools/refdecode.py MODEL_DIR                # decode, print summary
  python tools/refdecode.py MODEL_DIR EXPECTED.safetensors   # compare bit-exactly
"""
from __future__ import annotations

import json
import os
import struct
import sys

import numpy as np

# ----------------------------------------------------------------------------
# safetensors (FORMATS.md section 8) -- a minimal independent reader
# ----------------------------------------------------------------------------

_ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8,
    "BOOL": np.bool_,
}


def read_safetensors(path: str, strict: bool = True):
    """Returns (tensors: dict[name -> np.ndarray], metadata: dict | None).

    BF16 tensors are returned as raw np.uint16 bit patterns.
    With strict=True also checks the writer invariants of FORMATS.md section 8
    (contiguous coverage, header padded to a multiple of 8, sizes)."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = memoryview(buf)[8 + n:]
    meta = header.pop("__metadata__", None)
    out = {}
    spans = []
    for name, info in header.items():
        dt = info["dtype"]
        shape = tuple(info["shape"])
        b, e = info["data_offsets"]
        np_dt = np.uint16 if dt == "BF16" else _ST_DTYPES[dt]
        count = int(np.prod(shape)) if shape else 1
        if strict:
            assert e - b == count * np.dtype(np_dt).itemsize, (name, b, e, shape, dt)
        arr = np.frombuffer(data[b:e], dtype=np.dtype(np_dt).newbyteorder("<"), count=count)
        out[name] = arr.reshape(shape).astype(np_dt)  # native-endian copy
        spans.append((b, e))
    if strict:
        assert buf[8:9] == b"{", "header must start with '{'"
        assert n % 8 == 0, "rust writer pads header to a multiple of 8"
        pos = 0
        for b, e in sorted(spans):
            assert b == pos, ("gap/overlap in data", b, pos)
            pos = e
        assert pos == len(data), "buffer not fully covered"
    return out, meta


def load_state_dict(model_dir: str):
    """Loads model.safetensors or a sharded model-*-of-*.safetensors set."""
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    sd = {}
    for fn in files:
        t, _ = read_safetensors(os.path.join(model_dir, fn))
        sd.update(t)
    return sd


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------

def _nibbles_u32(words: np.ndarray) -> np.ndarray:
    """int32/uint32 [..., W] -> uint8 [..., W, 8]; nibble i = bits 4i..4i+3 (logical shift)."""
    u = words.astype(np.int64) & 0xFFFFFFFF
    shifts = np.arange(8, dtype=np.int64) * 4
    return ((u[..., None] >> shifts) & 0xF).astype(np.uint8)


def _nibbles_u16(words: np.ndarray) -> np.ndarray:
    """int16 [..., W] -> uint8 [..., W, 4]; nibble v = bits 4v..4v+3."""
    u = words.astype(np.int64) & 0xFFFF
    shifts = np.arange(4, dtype=np.int64) * 4
    return ((u[..., None] >> shifts) & 0xF).astype(np.uint8)


def _rne_f16_from_exact_f32(x: np.ndarray) -> np.ndarray:
    # numpy's float32 -> float16 cast is IEEE round-to-nearest-even (subnormals included)
    return np.ascontiguousarray(x.astype(np.float32).astype(np.float16))


def calculate_zeros_width(in_features: int, group_size: int, pack_num: int = 8) -> int:
    """FORMATS.md section 2.1: Wz = ceil(ceil((K/G)/8)/mult)*mult."""
    if group_size >= 128:
        mult = 1
    elif group_size == 64:
        mult = 2
    elif group_size == 32:
        mult = 4
    else:
        raise NotImplementedError(group_size)
    base = -(-(in_features // group_size) // pack_num)
    return -(-base // mult) * mult


# AWQ GEMM interleave: nibble i of a word holds column 8c + AWQ_ORDER[i]
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
# inverse: column 8c + j lives in nibble AWQ_REVERSE[j]
AWQ_REVERSE = (0, 4, 1, 5, 2, 6, 3, 7)


def unpack_awq_gemm_int(packed: np.ndarray) -> np.ndarray:
    """int32 [R, C] in AWQ GEMM order -> uint8 [R, 8C] (q[r][8c+j] = nibble AWQ_REVERSE[j])."""
    nib = _nibbles_u32(packed)                      # [R, C, 8] by nibble index
    cols = nib[:, :, list(AWQ_REVERSE)]             # [R, C, 8] by column-in-word j
    return cols.reshape(packed.shape[0], -1)


def unpack_sequential_int(packed: np.ndarray) -> np.ndarray:
    """int32 [R, C] sequential order -> uint8 [R, 8C] (q[r][8c+i] = nibble i)."""
    return _nibbles_u32(packed).reshape(packed.shape[0], -1)


# ----------------------------------------------------------------------------
# AutoAWQ GEMM  (FORMATS.md section 1)
# ----------------------------------------------------------------------------

def dequant_awq_gemm(qweight: np.ndarray, qzeros: np.ndarray, scales: np.ndarray,
                     group_size: int) -> np.ndarray:
    """qweight I32 [K, N/8], qzeros I32 [K/G, N/8], scales F16 [K/G, N] -> W F16 [N, K]."""
    K = qweight.shape[0]
    G = K if group_size in (-1, 0, None) else group_size
    assert qweight.dtype == np.int32 and qzeros.dtype == np.int32
    assert K % G == 0 and scales.shape[0] == K // G
    q = unpack_awq_gemm_int(qweight).astype(np.int32)       # [K, N]
    z = unpack_awq_gemm_int(qzeros).astype(np.int32)        # [K/G, N]
    N = q.shape[1]
    assert scales.shape == (K // G, N) and z.shape == (K // G, N)
    g = np.arange(K) // G
    prod = scales[g].astype(np.float32) * (q - z[g]).astype(np.float32)  # exact
    wt = _rne_f16_from_exact_f32(prod).astype(scales.dtype)            # [K, N]
    return np.ascontiguousarray(wt.T)


# ----------------------------------------------------------------------------
# AutoAWQ GEMV  (FORMATS.md section 2.1)
# ----------------------------------------------------------------------------

def dequant_awq_gemv(qweight: np.ndarray, qzeros: np.ndarray, scales: np.ndarray,
                     group_size: int) -> np.ndarray:
    """qweight I32 [N, K/8], qzeros I32 [N, Wz], scales F16 [N, 8*Wz] -> W F16 [N, K]."""
    N, K8 = qweight.shape
    K = K8 * 8
    G = K if group_size in (-1, 0, None) else group_size
    assert K % G == 0
    wz = calculate_zeros_width(K, G)
    assert qzeros.shape == (N, wz), (qzeros.shape, (N, wz))
    assert scales.shape == (N, 8 * wz), (scales.shape, (N, 8 * wz))
    q = unpack_sequential_int(qweight).astype(np.int32)     # [N, K]
    z = unpack_sequential_int(qzeros).astype(np.int32)      # [N, 8*Wz]
    ng = K // G
    g = np.arange(K) // G
    prod = scales[:, g].astype(np.float32) * (q - z[:, g]).astype(np.float32)
    return np.ascontiguousarray(_rne_f16_from_exact_f32(prod).astype(scales.dtype))


# ----------------------------------------------------------------------------
# AutoAWQ GEMV_fast / llm-awq v3  (FORMATS.md section 2.3)
# ----------------------------------------------------------------------------

def unpack_gemv_fast_int(qweight: np.ndarray, interleave: int = 4, kstride: int = 64) -> np.ndarray:
    """int16 [N/4, K] -> uint8 [N, K] using the closed form of FORMATS.md 2.3:
    nibble v of qweight[i][64j + 16r + w] = q[4i + r][64j + 32*(w>>3) + 8v + (w&7)]."""
    assert interleave == 4 and kstride == 64
    Ni, K = qweight.shape
    assert K % 64 == 0
    nib = _nibbles_u16(qweight)                     # [Ni, K, 4(v)]
    a = nib.reshape(Ni, K // 64, 4, 2, 8, 4)        # [i, j, r, h, l, v]; w = 8h + l
    a = a.transpose(0, 2, 1, 3, 5, 4)               # [i, r, j, h, v, l]
    return np.ascontiguousarray(a.reshape(Ni * 4, K))


def dequant_awq_gemv_fast(qweight: np.ndarray, qzeros: np.ndarray, scales: np.ndarray,
                          group_size: int) -> np.ndarray:
    """qweight I16 [N/4, K], qzeros (= scaled zeros, F16) [8*Wz, N], scales F16 [8*Wz, N]
    -> W F16 [N, K] with w = RNE(q*s + sz)."""
    assert qweight.dtype == np.int16
    N = qweight.shape[0] * 4
    K = qweight.shape[1]
    G = K if group_size in (-1, 0, None) else group_size
    wz = calculate_zeros_width(K, G)
    assert scales.shape == (8 * wz, N) and qzeros.shape == (8 * wz, N), (scales.shape, qzeros.shape, wz, N)
    q = unpack_gemv_fast_int(qweight)                # [N, K]
    g = np.arange(K) // G
    s = scales[g].T.astype(np.float32)               # [N, K]
    sz = qzeros[g].T.astype(np.float32)
    val = q.astype(np.float32) * s + sz              # exact in f32 (see FORMATS 2.3)
    return np.ascontiguousarray(_rne_f16_from_exact_f32(val).astype(scales.dtype))


# ----------------------------------------------------------------------------
# registry + checkpoint-level driver
# ----------------------------------------------------------------------------

# format name (meta.json) -> (decoder, tensor suffixes in call order)
FORMATS = {
    "autoawq-gemm": (dequant_awq_gemm, ("qweight", "qzeros", "scales")),
    "autoawq-gemv": (dequant_awq_gemv, ("qweight", "qzeros", "scales")),
    "autoawq-gemv-fast": (dequant_awq_gemv_fast, ("qweight", "qzeros", "scales")),
}

_AWQ_VERSION_TO_FORMAT = {
    "gemm": "autoawq-gemm",
    "gemv": "autoawq-gemv",
    "gemv_fast": "autoawq-gemv-fast",
}


def detect_format(config: dict) -> tuple[str, int]:
    """Returns (format name, group_size as written in the config)."""
    qc = config.get("quantization_config") or {}
    if qc.get("quant_method") == "awq":
        return _AWQ_VERSION_TO_FORMAT[qc.get("version", "gemm").lower()], int(qc.get("group_size", 128))
    raise NotImplementedError(f"unknown quantization_config: {qc}")


def decode_checkpoint(model_dir: str, fmt: str | None = None, group_size: int | None = None):
    """Decodes every quantized module of a checkpoint dir -> {module + '.weight': W[N,K]}."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    dfmt, dgs = detect_format(cfg)
    fmt = fmt or dfmt
    group_size = dgs if group_size is None else group_size
    fn, suffixes = FORMATS[fmt]
    sd = load_state_dict(model_dir)
    first = "." + suffixes[0]
    out = {}
    for name in sorted(sd):
        if name.endswith(first):
            prefix = name[: -len(first)]
            args = [sd[prefix + "." + s] for s in suffixes]
            out[prefix + ".weight"] = fn(*args, group_size)
    return out


def compare_bits(a: np.ndarray, b: np.ndarray) -> int:
    """Number of elements whose bit patterns differ (f16 compared as int16 views)."""
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    return int(np.count_nonzero(a.view(np.int16) != b.view(np.int16)))


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    dec = decode_checkpoint(argv[1])
    if len(argv) == 2:
        for k, v in dec.items():
            print(k, v.dtype, list(v.shape))
        return 0
    exp, _ = read_safetensors(argv[2])
    bad = 0
    assert sorted(exp) == sorted(dec), (sorted(exp), sorted(dec))
    for k in sorted(exp):
        d = compare_bits(dec[k], exp[k])
        bad += d
        print(f"{k}: {'OK' if d == 0 else f'{d} mismatches'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
