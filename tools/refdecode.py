#!/usr/bin/env python3
"""Reference (numpy-only) decoders for 4-bit AWQ-style checkpoint layouts.

Written from the layouts in docs/formats.md (§2 to §5), NOT copied
from any peer implementation.  tools/make_golden_awq.py validates the GEMM
decoder bit-for-bit against AutoAWQ's own ``awq.utils.packing_utils.
dequantize_gemm`` and the GEMV_fast unpacker against AutoAWQ's own
``pack_intweight`` before using these functions to write expected weights.

Layout: one function per format, each returning the dense nn.Linear weight
W[N, K] (row = output feature, column = input feature) in the scales dtype.
A small registry (FORMATS) maps the format name used in meta.json to
(decoder, tensor suffixes).  Other decoders (compressed-tensors, GPTQ,
ModelOpt, ...) can be added the same way.

Rounding rules (docs/formats.md §1):
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
# safetensors (docs/formats.md §2) -- a minimal independent reader
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
    With strict=True also checks the writer invariants of docs/formats.md §2
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
    """docs/formats.md §4: Wz = ceil(ceil((K/G)/8)/mult)*mult."""
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
# AutoAWQ GEMM  (docs/formats.md §3)
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
# AutoAWQ GEMV  (docs/formats.md §4)
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
# AutoAWQ GEMV_fast / llm-awq v3  (docs/formats.md §5)
# ----------------------------------------------------------------------------

def unpack_gemv_fast_int(qweight: np.ndarray, interleave: int = 4, kstride: int = 64) -> np.ndarray:
    """int16 [N/4, K] -> uint8 [N, K] using the closed form of docs/formats.md §5:
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


# ============================================================================
# Non-AWQ formats (added for tools/make_golden_others.py): compressed-tensors
# pack-quantized (docs/formats.md §8), GPTQ (§7), ModelOpt W4A16_AWQ (§9) and the
# TensorRT-LLM <= 0.7 NGC/AMMO .npz (§10).  Written from those notes; the CT and
# GPTQ decoders are asserted bit-identical to the peers' own dequantization
# (compressed_tensors decompress_weight, auto_gptq QuantLinear torch forward)
# before any expected file is written.  BF16 values are handled as raw uint16.
# ============================================================================

def bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def rne_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit pattern (uint16), round-to-nearest-even (no NaN inputs)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = u + 0x7FFF + ((u >> 16) & 1)
    return (u >> 16).astype(np.uint16)


def _scale_to_f32(s: np.ndarray, is_bf16: bool) -> np.ndarray:
    return bf16_bits_to_f32(s) if is_bf16 else s.astype(np.float32)


def _round_out(prod_f32: np.ndarray, is_bf16: bool, out_dtype=np.float16) -> np.ndarray:
    if is_bf16:
        return np.ascontiguousarray(rne_bf16_bits(prod_f32))
    return np.ascontiguousarray(prod_f32.astype(np.float32).astype(out_dtype))


def dequant_ct_pack_quantized(weight_packed: np.ndarray, weight_scale: np.ndarray,
                              weight_shape, weight_zero_point: np.ndarray | None = None,
                              g_idx: np.ndarray | None = None, scale_is_bf16: bool = False) -> np.ndarray:
    """compressed-tensors pack-quantized (docs/formats.md §8).
    weight_packed I32 [N, ceil(K/8)] (sequential along K, u = q+8), weight_scale [N, ng],
    weight_zero_point None | I32 [ceil(N/8), ng] (packed along N, u = zp+8) | I8 [N, ng]
    (pre-0.9.4, signed).  Returns W [N, K] = RNE(s * (q - zp)) in the scale dtype."""
    N, K = int(weight_shape[0]), int(weight_shape[1])
    assert weight_packed.dtype == np.int32 and weight_packed.shape == (N, -(-K // 8))
    q = unpack_sequential_int(weight_packed)[:, :K].astype(np.int32) - 8
    ng = weight_scale.shape[1]
    assert weight_scale.shape[0] == N
    if g_idx is not None:
        gi = g_idx.astype(np.int64)
    else:
        G = -(-K // ng)
        gi = np.arange(K) // G
    if weight_zero_point is None:
        zp = np.zeros((N, ng), np.int32)
    elif weight_zero_point.dtype == np.int8:
        assert weight_zero_point.shape == (N, ng)
        zp = weight_zero_point.astype(np.int32)
    else:
        assert weight_zero_point.dtype == np.int32 and weight_zero_point.shape == (-(-N // 8), ng)
        nib = _nibbles_u32(weight_zero_point)                # [R, ng, 8]
        zp = nib.transpose(0, 2, 1).reshape(-1, ng)[:N].astype(np.int32) - 8
    s = _scale_to_f32(weight_scale, scale_is_bf16)
    prod = s[:, gi] * (q - zp[:, gi]).astype(np.float32)     # exact in f32
    return _round_out(prod, scale_is_bf16)


def gptq_zero_points(qzeros: np.ndarray, N: int, zero_mode: str) -> np.ndarray:
    """qzeros I32 [ng, N/8] sequential along N -> z [ng, N].
    zero_mode: 'v1_mask_after' (AutoGPTQ qlinear_cuda_old: (n+1)&15), 'v1' (n+1, as ExLlama/
    vLLM/AutoGPTQ qlinear_cuda), 'v2' (n)."""
    nib = unpack_sequential_int(qzeros)[:, :N].astype(np.int32)
    if zero_mode == "v1_mask_after":
        return (nib + 1) & 0xF
    if zero_mode == "v1":
        return nib + 1
    if zero_mode == "v2":
        return nib
    raise ValueError(zero_mode)


def dequant_gptq(qweight: np.ndarray, qzeros: np.ndarray, scales: np.ndarray, g_idx: np.ndarray,
                 zero_mode: str = "v1_mask_after", scale_is_bf16: bool = False) -> np.ndarray:
    """GPTQ (docs/formats.md §7): qweight I32 [K/8, N] (sequential along K), qzeros I32 [ng, N/8],
    scales [ng, N], g_idx I32 [K] -> W [N, K] = RNE(s[g_idx[k]] * (q - z[g_idx[k]]))."""
    K = qweight.shape[0] * 8
    N = qweight.shape[1]
    assert qweight.dtype == np.int32 and g_idx.shape == (K,)
    nib = _nibbles_u32(qweight)                              # [K/8, N, 8]
    q = nib.transpose(0, 2, 1).reshape(K, N).astype(np.int32)
    z = gptq_zero_points(qzeros, N, zero_mode)               # [ng, N]
    gi = g_idx.astype(np.int64)
    s = _scale_to_f32(scales, scale_is_bf16)
    prod = s[gi] * (q - z[gi]).astype(np.float32)           # [K, N], exact
    return np.ascontiguousarray(_round_out(prod, scale_is_bf16).T)


def unpack_modelopt_int4(packed: np.ndarray) -> np.ndarray:
    """ModelOpt pack_int4_in_uint8 layout (docs/formats.md §9): U8/I8 [N/2, K] -> int8 [N, K];
    low nibble = row 2p, high nibble = row 2p+1, 4-bit two's complement."""
    b = packed.view(np.uint8).astype(np.int16)
    lo, hi = b & 0xF, (b >> 4) & 0xF
    q = np.stack([lo, hi], axis=1).reshape(-1, packed.shape[1])
    return np.where(q >= 8, q - 16, q).astype(np.int8)


def dequant_modelopt_w4a16(weight: np.ndarray, weight_scale: np.ndarray,
                           pre_quant_scale: np.ndarray | None, group_size: int,
                           out_dtype=np.float16) -> np.ndarray:
    """ModelOpt W4A16_AWQ: W [N, K] = RNE_out( f32(q*s) * f32(pqs[k]) ) (pqs folded in f32,
    one rounding), or RNE_out(q*s) without pre_quant_scale.  weight_scale F32 [N, K/G]."""
    q = unpack_modelopt_int4(weight).astype(np.float32)
    N, K = q.shape
    G = K if group_size in (-1, 0, None) else group_size
    assert weight_scale.dtype == np.float32 and weight_scale.shape == (N, K // G)
    w = q * weight_scale[:, np.arange(K) // G]              # f32 product (rounded in f32)
    if pre_quant_scale is not None:
        w = (w * pre_quant_scale.astype(np.float32)[None, :]).astype(np.float32)
    return np.ascontiguousarray(w.astype(out_dtype))


def _f16(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16)


def dequant_trtllm_npz_module(arrays: dict, prefix: str, qkv: bool = False) -> np.ndarray:
    """TensorRT-LLM <= 0.7 load_from_awq_llama (.npz branch, dtype float16) re-executed in numpy,
    then dequantized with the pre_quant_scale folded in (docs/formats.md §10):
      default: amax = wsf*7 (F32); scale = amax/8 (F32); x = f16(f32(w)/scale); q = clamp(rne(x), -8, 7)
               engine scale = f16(scale), engine pqs = f16(pqs)
      qkv=True: (reSmooth_and_get_scale) the file's wsf is ignored: amax = max|w| per group (F16),
               scale = f16(amax/8); pqs = f16(f16(f16(pq+pk)+pv)/3) over the q/k/v pqs.
      dense = RNE_f16( f32( f32(q*scale16) * f32(pqs16[k]) ) )."""
    w = arrays[prefix + ":weight"]
    assert w.dtype == np.float16
    N, K = w.shape
    wsf = arrays[prefix + ":weights_scaling_factor"]
    G = (N * K) // wsf.size
    wf = w.astype(np.float32)
    if not qkv:
        amax = (wsf.reshape(N, K // G) * wsf.dtype.type(7)).astype(wsf.dtype)
        scale = (amax / wsf.dtype.type(8.0)).astype(wsf.dtype)
        x = _f16(wf / scale.astype(np.float32)[:, np.arange(K) // G])
        scale16 = scale.astype(np.float16)
        pqs16 = arrays[prefix + ":prequant_scaling_factor"].reshape(K).astype(np.float16)
    else:
        amax16 = np.abs(w).reshape(N, K // G, G).max(-1)                 # F16
        scale16 = _f16(amax16.astype(np.float32) / np.float32(8))
        x = _f16(wf / scale16.astype(np.float32)[:, np.arange(K) // G])
        base = prefix.rsplit(":", 1)[0]
        ps = [arrays[f"{base}:{t}:prequant_scaling_factor"].reshape(K) for t in "qkv"]
        if ps[0].dtype == np.float16:
            acc = _f16(_f16(ps[0].astype(np.float32) + ps[1].astype(np.float32)).astype(np.float32)
                       + ps[2].astype(np.float32))
            pqs16 = _f16(acc.astype(np.float32) / np.float32(3.0))
        else:
            acc = ((ps[0] + ps[1]) + ps[2]) / ps[0].dtype.type(3.0)
            pqs16 = acc.astype(np.float16)
    # round half to even, then .char() (int8) and clamp as the loader does: an integer code, so a
    # negative x that rounds to 0 dequantizes to +0, never -0
    q = np.clip(np.round(x.astype(np.float32)), -8, 7).astype(np.int8).astype(np.float32)
    prod = q * scale16.astype(np.float32)[:, np.arange(K) // G]         # exact
    prod = (prod * pqs16.astype(np.float32)[None, :]).astype(np.float32)
    return np.ascontiguousarray(prod.astype(np.float16))


def _safetensors_dtypes(path: str) -> dict:
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    hdr.pop("__metadata__", None)
    return {k: v["dtype"] for k, v in hdr.items()}


def decode_case_dir(case_dir: str) -> dict:
    """Decodes tests/data/golden/<case>/model using <case>/meta.json (non-AWQ formats)
    -> {module + '.weight': W[N, K]} (bf16 as raw uint16)."""
    with open(os.path.join(case_dir, "meta.json")) as f:
        meta = json.load(f)
    md = os.path.join(case_dir, "model")
    fmt = meta["format"]
    out = {}
    if fmt == "trtllm-npz":
        npz = [f for f in os.listdir(md) if f.endswith(".npz")]
        assert len(npz) == 1
        arrays = dict(np.load(os.path.join(md, npz[0])))
        for key in sorted(arrays):
            if key.endswith(":weights_scaling_factor"):
                pre = key[: -len(":weights_scaling_factor")]
                mod = pre[len("_np:"):].replace(":", ".")
                out[mod + ".weight"] = dequant_trtllm_npz_module(arrays, pre, qkv=":attention:qkv:" in pre)
        return out
    sd = load_state_dict(md)
    dts = _safetensors_dtypes(os.path.join(md, "model.safetensors"))
    for mod in meta["quantized_layers"]:
        if fmt == "compressed-tensors":
            out[mod + ".weight"] = dequant_ct_pack_quantized(
                sd[mod + ".weight_packed"], sd[mod + ".weight_scale"], sd[mod + ".weight_shape"],
                sd.get(mod + ".weight_zero_point"), sd.get(mod + ".weight_g_idx"),
                scale_is_bf16=dts[mod + ".weight_scale"] == "BF16")
        elif fmt == "gptq":
            mode = "v2" if meta.get("gptq_format") == "v2" else "v1_mask_after"
            out[mod + ".weight"] = dequant_gptq(
                sd[mod + ".qweight"], sd[mod + ".qzeros"], sd[mod + ".scales"], sd[mod + ".g_idx"],
                mode, scale_is_bf16=dts[mod + ".scales"] == "BF16")
        elif fmt == "modelopt":
            with open(os.path.join(md, "config.json")) as f:
                tdt = json.load(f).get("torch_dtype", "float16")
            assert tdt == "float16", tdt   # bf16 output would need rne_bf16_bits
            out[mod + ".weight"] = dequant_modelopt_w4a16(
                sd[mod + ".weight"], sd[mod + ".weight_scale"], sd.get(mod + ".pre_quant_scale"),
                meta["group_size"], np.float16)
        else:
            raise NotImplementedError(fmt)
    return out


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
