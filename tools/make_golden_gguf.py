#!/usr/bin/env python3
"""Golden GGUF files for the reader and the ggml dequantization (tests/io/gguf_test.cc).

Made by llama.cpp's own code, never ours:
  * the files are written by llama.cpp's `gguf` Python package (gguf-py, PyPI gguf==0.19.0);
  * Q4_0 / Q4_1 / Q8_0 / BF16 tensors are quantized by gguf.quants (ggml's reference
    quantizers ported to numpy), Q4_K / Q6_K by ggml itself (ggml_quantize_chunk in
    libggml-base.so: gguf.quants has no Q4_K/Q6_K quantizer), F16 by numpy;
  * besides those, every type gets blocks of random bytes (finite f16 scales), so every bit
    pattern of the packed 6-bit Q4_K scales and Q6_K's high bits is covered;
  * the expected f32 values are gguf.quants.dequantize's, and are asserted equal, bit for bit,
    to ggml's own C dequantization (the type traits' to_float in libggml-base.so).

Each tests/data/gguf/<type>.gguf holds tensors `quantized` [3 rows x 512] and `random`
[2 x 512] of that type, and `quantized.expected` / `random.expected` F32 with the values.
`metadata.gguf` holds one metadata key of every value type (arrays of each too) and alignment 64.

`model-llama.gguf` is a whole tiny Llama (2 layers, hidden 256, 4/2 heads, the tokenizer of
tests/data/tiny-llama-awq as "gpt2"/"gpt-2") whose linears mix every supported type (Q4_0, Q4_1,
Q4_K, Q6_K, Q8_0, BF16, F16; q/k rows permuted as llama.cpp's LlamaModel.permute does), a Q4_K
token embedding and a Q6_K output. `model-llama-logits.safetensors` holds input_ids [1, T] and the
logits [1, T, vocab] that transformers' own GGUF loader (from_pretrained(gguf_file=...): gguf-py
dequantization, its q/k reverse permutation, its config from the metadata) gives in f32. That part
also needs torch and transformers (tools/requirements-golden.txt).

Recreate: the venv of tools/requirements-gguf.txt, and llama.cpp built by
tools/build_llamacpp.sh (for libggml-base.so):
    python tools/make_golden_gguf.py --ggml-lib vendor/llama.cpp/build/bin/libggml-base.so
Deterministic (seeded): a rerun reproduces every file byte for byte.
"""
import argparse
import ctypes
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "gguf")
ROW = 512


class TypeTraits(ctypes.Structure):  # ggml.h struct ggml_type_traits
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p),
                ("from_float_ref", ctypes.c_void_p)]


class Ggml:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        self.lib.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
        self.lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
        self.lib.ggml_quantize_chunk.restype = ctypes.c_size_t
        self.lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                                 ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]

    def quantize(self, t, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        bs, ts = gguf.GGML_QUANT_SIZES[t]
        out = np.zeros((x.shape[0], x.shape[1] // bs * ts), dtype=np.uint8)
        n = self.lib.ggml_quantize_chunk(int(t), x.ctypes.data, out.ctypes.data, 0, x.shape[0], x.shape[1], None)
        assert n == out.nbytes, (n, out.nbytes)
        return out

    def dequantize(self, t, raw, n):
        tr = self.lib.ggml_get_type_traits(int(t)).contents
        fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(tr.to_float)
        raw = np.ascontiguousarray(raw)
        y = np.zeros(n, dtype=np.float32)
        fn(raw.ctypes.data, y.ctypes.data, n)
        return y


def random_blocks(rng, t, rows):
    """Random bytes, with every f16 scale field replaced by a finite value of either sign."""
    bs, ts = gguf.GGML_QUANT_SIZES[t]
    nb = rows * ROW // bs
    b = rng.integers(0, 256, size=(nb, ts), dtype=np.uint8)
    def f16(n):
        return (rng.standard_normal(n).astype(np.float32) * np.float32(0.05)).astype(np.float16).view(np.uint8).reshape(n, 2)
    if t in (T.Q4_0, T.Q8_0):
        b[:, 0:2] = f16(nb)
    elif t == T.Q4_1:
        b[:, 0:2] = f16(nb)
        b[:, 2:4] = f16(nb)
    elif t == T.Q4_K:
        b[:, 0:2] = f16(nb)
        b[:, 2:4] = f16(nb)
    elif t == T.Q6_K:
        b[:, ts - 2:ts] = f16(nb)
    return b.reshape(rows, -1)


def weights(rng, rows):
    w = rng.standard_normal((rows, ROW)).astype(np.float32) * np.float32(0.02)
    w[0, :32] = 0  # an all-zero block
    w[1, 7] = 0.5  # an outlier
    return w


def make_type(t, ggml, rng):
    rows_q, rows_r = 3, 2
    w = weights(rng, rows_q)
    if t == T.F32:
        q, r = w, rng.standard_normal((rows_r, ROW)).astype(np.float32)
    elif t == T.F16:
        q = w.astype(np.float16)
        r = rng.integers(0, 1 << 16, size=(rows_r, ROW), dtype=np.uint16).view(np.float16)
        r[~np.isfinite(r)] = 0  # inf/NaN bit patterns map through unchanged, but keep the goldens finite
    elif t == T.BF16:
        q = quants.quantize(w, t)
        r = rng.integers(0, 1 << 16, size=(rows_r, ROW), dtype=np.uint16)
        r[(r & 0x7F80) == 0x7F80] = 0
        r = r.view(np.uint8).reshape(rows_r, -1)
    else:
        q = ggml.quantize(t, w) if t in (T.Q4_K, T.Q6_K) else quants.quantize(w, t)
        if ggml and t not in (T.Q4_K, T.Q6_K):
            assert np.array_equal(q, ggml.quantize(t, w)), f"gguf.quants and ggml quantize {t.name} differently"
        r = random_blocks(rng, t, rows_r)
    writer = gguf.GGUFWriter(os.path.join(OUT, t.name.lower() + ".gguf"), "golden")
    for name, data, rows in (("quantized", q, rows_q), ("random", r, rows_r)):
        expected = quants.dequantize(data, t).astype(np.float32).reshape(rows, ROW)
        if ggml and t not in (T.F32,):
            raw = data.view(np.uint8) if data.dtype != np.uint8 else data
            ref = ggml.dequantize(t, raw, rows * ROW).reshape(rows, ROW)
            assert np.array_equal(ref.view(np.uint32), expected.view(np.uint32)), f"{t.name}: gguf-py and ggml disagree"
        raw_dtype = None if t in (T.F32, T.F16) else t
        writer.add_tensor(name, data, raw_dtype=raw_dtype)
        writer.add_tensor(name + ".expected", expected)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def make_metadata():
    w = gguf.GGUFWriter(os.path.join(OUT, "metadata.gguf"), "golden")
    w.add_custom_alignment(64)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.1)
    w.add_bool("t.bool", True)
    w.add_string("t.string", "héllo ✓")
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", 1e300)
    w.add_array("t.arr_str", ["a", "", "Ġthe"])
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_f32", [0.5, -1.25])
    w.add_key_value("t.arr_u8", [1, 2, 255], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.UINT8)
    w.add_key_value("t.arr_bool", [True, False], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.BOOL)
    w.add_tensor("a", np.arange(3 * 64, dtype=np.float32).reshape(3, 64))  # ne = [64, 3]
    w.add_tensor("b", np.arange(5, dtype=np.float16))                       # 10 bytes: padded to 64
    w.add_tensor("c", np.arange(7, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_permute(w, heads):
    """llama.cpp's LlamaModel.permute (conversion/llama.py): rows of q/k for its rope layout."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def encode(ggml, t, w):
    """Raw bytes of w [rows, cols] in ggml type t, quantized by ggml itself where gguf-py cannot."""
    if t == T.F32:
        return w.astype(np.float32), None
    if t == T.F16:
        return w.astype(np.float16), None
    if t in (T.Q4_K, T.Q6_K):
        return ggml.quantize(t, w), t
    q = quants.quantize(w.astype(np.float32), t)
    if t != T.BF16:
        assert np.array_equal(q, ggml.quantize(t, w)), f"gguf.quants and ggml quantize {t.name} differently"
    return q, t


def make_model(ggml):
    import json
    rng = np.random.default_rng(1919)
    src = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "tiny-llama-awq")
    tok = json.load(open(os.path.join(src, "tokenizer.json")))
    vocab, hidden, inter, layers, heads, kv_heads = 512, 256, 512, 2, 4, 2
    hd = hidden // heads
    path = os.path.join(OUT, "model-llama.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("golden-llama")
    w.add_block_count(layers)
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_dimension_count(hd)
    w.add_vocab_size(vocab)
    w.add_file_type(15)  # LLAMA_FTYPE_MOSTLY_Q4_K_M (a mixture, as llama.cpp's own Q4_K_M files are)
    # Tokenizer: tiny-llama-awq's byte-level BPE, as gguf-py's writer stores one.
    tokens = [None] * vocab
    for t, i in tok["model"]["vocab"].items():
        tokens[i] = t
    types = [gguf.TokenType.NORMAL] * vocab
    for a in tok["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = gguf.TokenType.CONTROL if a["special"] else gguf.TokenType.USER_DEFINED
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)

    def tensor(name, t, x):
        data, raw = encode(ggml, t, x)
        w.add_tensor(name, data, raw_dtype=raw)

    def mat(rows, cols, std):
        return (rng.standard_normal((rows, cols)) * std).astype(np.float32)

    def norm(n):
        return (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    tensor("token_embd.weight", T.Q4_K, mat(vocab, hidden, 1.0))
    # Per layer: (q, k, v, o, gate, up, down) types; layer 1 has q|k|v and gate|up of one type each,
    # so the runtime stacks them; layer 0 mixes kernel-held and dense types inside each group.
    kinds = [(T.Q4_K, T.Q4_K, T.Q6_K, T.Q4_0, T.Q4_1, T.Q8_0, T.Q4_K),
             (T.Q4_1, T.Q4_1, T.Q4_1, T.BF16, T.Q4_K, T.Q4_K, T.F16)]
    for l in range(layers):
        tq, tk, tv, to, tg, tu, td = kinds[l]
        b = f"blk.{l}."
        tensor(b + "attn_norm.weight", T.F32, norm(hidden))
        tensor(b + "attn_q.weight", tq, llama_permute(mat(heads * hd, hidden, 0.08), heads))
        tensor(b + "attn_k.weight", tk, llama_permute(mat(kv_heads * hd, hidden, 0.08), kv_heads))
        tensor(b + "attn_v.weight", tv, mat(kv_heads * hd, hidden, 0.06))
        tensor(b + "attn_output.weight", to, mat(hidden, heads * hd, 0.06))
        tensor(b + "ffn_norm.weight", T.F32, norm(hidden))
        tensor(b + "ffn_gate.weight", tg, mat(inter, hidden, 0.06))
        tensor(b + "ffn_up.weight", tu, mat(inter, hidden, 0.06))
        tensor(b + "ffn_down.weight", td, mat(hidden, inter, 0.05))
    tensor("output_norm.weight", T.F32, norm(hidden))
    tensor("output.weight", T.Q6_K, mat(vocab, hidden, 0.08))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    import torch
    from safetensors.torch import save_file
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM.from_pretrained(OUT, gguf_file="model-llama.gguf", torch_dtype=torch.float32,
                                             attn_implementation="eager").eval()
    ids = torch.tensor([[1, 5, 77, 300, 12, 45, 9, 411, 255, 3, 100, 60, 7, 499, 88, 20]], dtype=torch.int32)
    with torch.no_grad():
        logits = model(ids.long()).logits.float()
    save_file({"input_ids": ids, "logits": logits.contiguous()}, os.path.join(OUT, "model-llama-logits.safetensors"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ggml-lib", required=True, help="libggml-base.so of llama.cpp (tools/build_llamacpp.sh)")
    ap.add_argument("--only", choices=["types", "model"], help="make only the per-type files or only the model")
    a = ap.parse_args()
    ggml = Ggml(a.ggml_lib)
    os.makedirs(OUT, exist_ok=True)
    if a.only != "model":
        rng = np.random.default_rng(19)
        for t in (T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q8_0, T.Q4_K, T.Q6_K):
            make_type(t, ggml, rng)
        make_metadata()
    if a.only != "types":
        make_model(ggml)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
