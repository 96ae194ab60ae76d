#!/usr/bin/env python3
"""Writes a Llama-2-7B-shaped GGUF with random weights for the llama.cpp side of the speed comparison
(issue 16, "Speed"): every 2-D weight Q4_K (token_embd included), the output Q6_K, norms F32 -- that is
llama.cpp's Q4_K_M without the extra Q6_K layers it gives to half the attn_v/ffn_down tensors
(llama.cpp's llama-quant.cpp leaves token_embd at the base type, Q4_K, for Q4_K_M; only output.weight
goes to Q6_K). A synthetic SentencePiece (`llama`) vocabulary of 32000 tokens makes llama-bench load it.

The blocks are written byte by byte in ggml's layouts (docs: ggml-common.h in llama.cpp):
  block_q4_K (144 bytes / 256 weights): f16 d, f16 dmin, 12 bytes of 6-bit scales+mins, 128 bytes of nibbles
  block_q6_K (210 bytes / 256 weights): 128 bytes ql, 64 bytes qh, 16 int8 scales, f16 d
with random codes and small positive f16 scales chosen so that the weights are centred with a standard
deviation near 0.02 (as in trained Llama weights), so activations stay finite through 32 layers.
gguf.quants cannot quantize Q4_K/Q6_K, but it dequantizes them: the script checks its blocks with it.

Usage (venv: tools/requirements-llamabench.txt):
  /work/venv/bin/python tools/make_llama7b_gguf.py [-o /work/big/llama7b-q4k.gguf] [--layers 32] [--seed 1]
The output is ~3.8 GB: write it outside the repository. Written to OUT.tmp, then renamed.
"""
import argparse
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

QK_K = 256
HIDDEN, INTER, HEADS, KV_HEADS, VOCAB, CTX = 4096, 11008, 32, 32, 32000, 4096


def q4_k_rows(rng, rows, cols):
    """Random Q4_K rows as uint8 [rows, cols/256*144]: w = d*sc*q - dmin*m with dmin = 8d and
    m = round(sc*15/16) so each sub-block is centred on q = 7.5."""
    nb = rows * (cols // QK_K)
    d = rng.uniform(0.8e-4, 1.2e-4, nb).astype(np.float16)
    dmin = (d.astype(np.float32) * 8).astype(np.float16)
    sc = rng.integers(24, 64, (nb, 8), dtype=np.uint8)
    m = np.minimum(np.rint(sc * (15.0 / 16.0)), 63).astype(np.uint8)
    scales = np.empty((nb, 12), np.uint8)
    scales[:, 0:4] = (sc[:, 0:4] & 0x3F) | ((sc[:, 4:8] >> 4) << 6)
    scales[:, 4:8] = (m[:, 0:4] & 0x3F) | ((m[:, 4:8] >> 4) << 6)
    scales[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((m[:, 4:8] & 0x0F) << 4)
    qs = np.frombuffer(rng.bytes(nb * 128), np.uint8).reshape(nb, 128)
    blocks = np.concatenate([d.view(np.uint8).reshape(nb, 2), dmin.view(np.uint8).reshape(nb, 2), scales, qs], axis=1)
    return blocks.reshape(rows, -1)


def q6_k_rows(rng, rows, cols):
    """Random Q6_K rows as uint8 [rows, cols/256*210]: w = d*scale*(q-32), q uniform in 0..63."""
    nb = rows * (cols // QK_K)
    ql = np.frombuffer(rng.bytes(nb * 128), np.uint8).reshape(nb, 128)
    qh = np.frombuffer(rng.bytes(nb * 64), np.uint8).reshape(nb, 64)
    scales = rng.integers(4, 17, (nb, 16), dtype=np.int8).view(np.uint8)
    d = rng.uniform(0.8e-4, 1.2e-4, nb).astype(np.float16)
    blocks = np.concatenate([ql, qh, scales, d.view(np.uint8).reshape(nb, 2)], axis=1)
    return blocks.reshape(rows, -1)


def check_layouts(rng):
    """The block sizes are ggml's, and gguf.quants decodes our blocks to the intended sub-block
    scales and to finite, centred weights with std near 0.02."""
    for qt, size in ((QT.Q4_K, 144), (QT.Q6_K, 210)):
        bs, ts = gguf.GGML_QUANT_SIZES[qt]
        if (bs, ts) != (QK_K, size):
            sys.exit(f"gguf says {qt.name} is {ts} bytes per {bs} weights, expected {size} per {QK_K}")
    b = q4_k_rows(rng, 64, 4096)
    sc_ref = b.reshape(-1, 144)[:, 4:16]
    sc, m = gguf.quants.Q4_K.get_scale_min(sc_ref.copy())
    if not (sc.min() >= 24 and sc.max() <= 63 and np.array_equal(m, np.minimum(np.rint(sc * (15.0 / 16.0)), 63))):
        sys.exit("Q4_K scale packing does not round-trip through gguf.quants")
    for name, blocks, qt in (("Q4_K", b, QT.Q4_K), ("Q6_K", q6_k_rows(rng, 64, 4096), QT.Q6_K)):
        w = gguf.quants.dequantize(blocks, qt)
        if w.shape != (64, 4096) or not np.isfinite(w).all():
            sys.exit(f"{name}: bad dequantized block")
        mean, std = float(w.mean()), float(w.std())
        if abs(mean) > 2e-3 or not 0.01 < std < 0.04:
            sys.exit(f"{name}: weights mean {mean:.4g} std {std:.4g}, expected ~0 and ~0.02")
        print(f"{name}: {blocks.shape[1] // (4096 // QK_K)} bytes/block, weights mean {mean:+.2e} std {std:.4f}")


def vocab():
    """A SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, then pieces."""
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    letters = "abcdefghijklmnopqrstuvwxyz"
    i = 0
    while len(toks) < VOCAB:
        s, n = "", i
        while True:
            s = letters[n % 26] + s
            n = n // 26 - 1
            if n < 0:
                break
        toks.append(("\u2581" if i % 2 == 0 else "") + s)
        types.append(gguf.TokenType.NORMAL)
        i += 1
    scores = [0.0] * 259 + [-float(k) for k in range(VOCAB - 259)]
    assert len(set(toks)) == VOCAB
    return toks, scores, types


def tensor_plan(layers):
    """(name, numpy shape [rows, cols] or [n], type) in llama.cpp's names; GGUF stores ne reversed."""
    plan = [("token_embd.weight", (VOCAB, HIDDEN), QT.Q4_K)]
    for l in range(layers):
        p = f"blk.{l}."
        plan += [(p + "attn_norm.weight", (HIDDEN,), QT.F32),
                 (p + "attn_q.weight", (HIDDEN, HIDDEN), QT.Q4_K),
                 (p + "attn_k.weight", (HIDDEN * KV_HEADS // HEADS, HIDDEN), QT.Q4_K),
                 (p + "attn_v.weight", (HIDDEN * KV_HEADS // HEADS, HIDDEN), QT.Q4_K),
                 (p + "attn_output.weight", (HIDDEN, HIDDEN), QT.Q4_K),
                 (p + "ffn_norm.weight", (HIDDEN,), QT.F32),
                 (p + "ffn_gate.weight", (INTER, HIDDEN), QT.Q4_K),
                 (p + "ffn_up.weight", (INTER, HIDDEN), QT.Q4_K),
                 (p + "ffn_down.weight", (HIDDEN, INTER), QT.Q4_K)]
    plan += [("output_norm.weight", (HIDDEN,), QT.F32), ("output.weight", (VOCAB, HIDDEN), QT.Q6_K)]
    return plan


def nbytes(shape, qt):
    if qt == QT.F32:
        return 4 * int(np.prod(shape))
    bs, ts = gguf.GGML_QUANT_SIZES[qt]
    return shape[0] * shape[1] // bs * ts


def make(rng, shape, qt):
    if qt == QT.F32:
        return np.ones(shape, np.float32)
    return (q4_k_rows if qt == QT.Q4_K else q6_k_rows)(rng, *shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", default="/work/big/llama7b-q4k.gguf")
    ap.add_argument("--layers", type=int, default=32, help="decoder layers (32 for 7B; fewer for a quick test)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    check_layouts(rng)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    w = gguf.GGUFWriter(tmp, "llama")
    w.add_name("synthetic Llama-2-7B shape, random Q4_K/Q6_K weights (awq tools/make_llama7b_gguf.py)")
    w.add_context_length(CTX)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(args.layers)
    w.add_feed_forward_length(INTER)
    w.add_rope_dimension_count(HIDDEN // HEADS)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(VOCAB)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    toks, scores, types = vocab()
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    plan = tensor_plan(args.layers)
    for name, shape, qt in plan:
        n = nbytes(shape, qt)
        if qt == QT.F32:
            w.add_tensor_info(name, shape, np.dtype(np.float32), n)
        else:
            w.add_tensor_info(name, (shape[0], n // shape[0]), np.dtype(np.uint8), n, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    total = 0
    for i, (name, shape, qt) in enumerate(plan):
        t = make(rng, shape, qt)
        assert t.nbytes == nbytes(shape, qt), name
        w.write_tensor_data(t)
        total += t.nbytes
        if name.endswith("ffn_down.weight") or i == len(plan) - 1:
            print(f"  {name:24s} {total / 2**30:6.2f} GiB", flush=True)
    w.close()
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {len(plan)} tensors, {os.path.getsize(args.out) / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
