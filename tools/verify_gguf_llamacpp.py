#!/usr/bin/env python3
"""Checks `awq convert --to gguf` against llama.cpp's own code, not ours.

For a quantized model directory (default: tests/data/tiny-llama-awq) it runs
  1. `awq convert MODEL -o X.gguf --to gguf --gguf-type T` for T in q4_1, q4_k;
  2. gguf-py (llama.cpp's `gguf` package) reads X.gguf and dequantizes every tensor with
     gguf.quants.dequantize; each is compared with `awq dequantize MODEL --dtype f32` of the
     *source* after mapping the Hugging Face name with gguf-py's own TensorNameMap and permuting
     q/k rows with llama.cpp's LlamaModel.permute formula (llama arch only). q4_1 must agree within
     the f16 rounding of m = -z*s (|dw| <= 2^-11 * max|z*s| of the tensor + 1e-6); q4_k's added
     error is reported;
  3. llama.cpp's `llama-tokenize` tokenizes a varied text with X.gguf; `awq tokenize MODEL`
     must give the same ids. The same for each tokenizer under tests/data/tokenizers (Llama 3
     "llama-bpe", Qwen2 "qwen2", GPT-2 "gpt-2", Llama 2 / Mistral tokenizer.json "llama"): it is
     put into a copy of the tiny model (config vocab_size raised to cover its ids; llama-tokenize
     loads only the vocabulary) and exported;
  4. llama.cpp (libllama, through tools/llamacpp/llamacpp_logits.c) computes the prompt's logits
     with X.gguf; `awq run MODEL --logits-out` computes them on the source AWQ checkpoint: the
     largest |difference| / std(logits) per position and the top-1 tokens are compared. Also for a
     copy whose config.json gets Llama 3.1 rope scaling (factor 8, original context 16, so it
     matters within the prompt): rope_freqs.weight must equal what llama.cpp's converter computes
     (LlamaModel.generate_extra_tensors, run here with torch), and the logits must agree.
A dense model directory (no quantization config; e.g. models/kjv-llama) is exported with
--dense-type bf16 and f16 (gguf-py must give back the source's weights, read with safetensors +
torch: bf16 bit for bit, f16 within its subnormal rounding), and the same tokenizer and logits
checks run. In every case
`awq tokenize X.gguf` and `awq run X.gguf --logits-out` (the GGUF read back by our runtime) are
compared with llama.cpp too.
Prints a Markdown report; exits 1 if a check fails.

Needs the venv of tools/requirements-gguf.txt and llama.cpp built by tools/build_llamacpp.sh:
    python tools/verify_gguf_llamacpp.py [MODEL] --llamacpp vendor/llama.cpp
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf.quants import dequantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = ("In the beginning God created the heaven and the earth.\n\n"
        "Numbers: 12345 and 3.14159, dates 2024-05-06; e-mail a.b@c.org!\n"
        "  Indented   spaces,\ttabs and CamelCaseWords don't can't we'll.\n"
        "Ünïcödé: café, naïve, Straße, 日本語のテキスト, 🙂👍🏽, Ελληνικά, русский.")
PROMPT = "In the beginning God created the heaven and the earth."


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return r.stdout


def load_safetensors_dir(d):
    from safetensors.numpy import load_file
    out = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            out.update(load_file(os.path.join(d, f)))
    return out


def permute(w, n_head, n_head_kv):  # llama.cpp conversion/llama.py LlamaModel.permute
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def check_dequant(gguf_path, ref, config):
    reader = gguf.GGUFReader(gguf_path)
    arch = reader.fields["general.architecture"].contents()
    arch_enum = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch]
    nmap = gguf.get_tensor_name_map(arch_enum, config["num_hidden_layers"])
    expected = {}
    for hf, w in ref.items():
        base = hf[:-len(".weight")] if hf.endswith(".weight") else hf[:-len(".bias")]
        suffix = hf[len(base):]
        name = nmap.get_name(base)
        if name is None:
            continue
        if arch == "llama" and base.endswith(("q_proj", "k_proj")):
            heads = config["num_attention_heads"]
            kv = config.get("num_key_value_heads", heads)
            w = permute(w, heads, heads if base.endswith("q_proj") else kv)
        expected[name + suffix] = w
    rows, worst, ok = [], 0.0, True
    for t in reader.tensors:
        if t.name == "rope_freqs.weight":
            continue
        got = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(expected[t.name].shape)
        d = float(np.max(np.abs(got - expected[t.name])))
        worst = max(worst, d)
        rows.append((t.name, t.tensor_type.name, d))
    missing = set(expected) - {t.name for t in reader.tensors}
    if missing:
        ok = False
        rows.append((f"MISSING: {sorted(missing)}", "", 0.0))
    return ok, worst, rows


def llama3_rope_factors(hparams):
    """llama.cpp conversion/llama.py LlamaModel.generate_extra_tensors, as written there."""
    import math
    import torch
    rope_params = hparams["rope_scaling"]
    base = hparams.get("rope_theta", 10000.0)
    if (dim := hparams.get("head_dim")) is None:
        dim = hparams["hidden_size"] // hparams["num_attention_heads"]
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor = rope_params.get("factor", 8.0)
    low_freq_factor = rope_params.get("low_freq_factor", 1.0)
    high_freq_factor = rope_params.get("high_freq_factor", 4.0)
    old_context_len = rope_params.get("original_max_position_embeddings", 8192)
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    rope_factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_freq_wavelen:
            rope_factors.append(1)
        elif wavelen > low_freq_wavelen:
            rope_factors.append(factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            rope_factors.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(rope_factors, dtype=torch.float32).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=os.path.join(ROOT, "tests/data/tiny-llama-awq"))
    ap.add_argument("--llamacpp", default=os.path.join(ROOT, "vendor/llama.cpp"))
    ap.add_argument("--awq", default=os.path.join(ROOT, "build/release/awq"))
    ap.add_argument("--threads", default="2")
    a = ap.parse_args()
    bindir = os.path.join(a.llamacpp, "build/bin")
    env = dict(os.environ, LD_LIBRARY_PATH=bindir)
    config = json.load(open(os.path.join(a.model, "config.json")))
    dense = "quantization_config" not in config and not any(
        os.path.exists(os.path.join(a.model, f)) for f in ("quant_config.json", "quantize_config.json", "hf_quant_config.json"))
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        if dense:
            from safetensors.torch import load_file as load_torch
            ref = {}
            for f in sorted(os.listdir(a.model)):
                if f.endswith(".safetensors"):
                    ref.update({k: v.float().numpy() for k, v in load_torch(os.path.join(a.model, f)).items()})
        else:
            run([a.awq, "dequantize", a.model, "-o", f"{tmp}/ref", "--dtype", "f32", "-q"])
            ref = load_safetensors_dir(f"{tmp}/ref")
        print(f"# GGUF export checked against llama.cpp\n\nmodel: `{a.model}`{' (dense)' if dense else ''}\n")
        gtypes = ("bf16", "f16") if dense else ("q4_1", "q4_k")
        for gtype in gtypes:
            out = f"{tmp}/{gtype}.gguf"
            extra = ["--dense-type", gtype] if dense else ["--gguf-type", gtype]
            log = run([a.awq, "convert", a.model, "-o", out, "--to", "gguf", "-q"] + extra)
            total = [l for l in log.splitlines() if l.startswith("total:")]
            reader = gguf.GGUFReader(out)
            ok, worst, rows = check_dequant(out, ref, config)
            # q4_1 bound: the f16 rounding of m, per tensor: 2^-11 * max|m| (+ 1e-6 for the f32 sums).
            reader_tensors = {t.name: t for t in reader.tensors}
            for name, tname, d in rows:
                if tname in ("Q4_1", "Q4_0") and gtype == "q4_1":
                    t = reader_tensors[name]
                    blocks = np.asarray(t.data).reshape(-1, 20 if tname == "Q4_1" else 18)
                    mabs = float(np.max(np.abs(blocks[:, 2:4].copy().view(np.float16).astype(np.float32)))) if tname == "Q4_1" else 0.0
                    if d > mabs * 2.0**-11 + 1e-6:
                        ok = False
                # F16 of a bf16 source: exact but for values below f16's normal range, rounded to its
                # subnormal step 2^-24 (so within 2^-25); BF16 / F32 of the source: exact.
                if (tname == "F16" and d > (2.0**-25 if dense else 0)) or (tname in ("BF16", "F32") and d != 0):
                    ok = False
            print(f"## gguf-py dequantization, --gguf-type {gtype}\n")
            print(f"awq convert reports: `{total[0] if total else '?'}`\n")
            print("| tensor | type | max abs diff vs awq dequantize (source) |\n|---|---|---|")
            for name, tname, d in rows:
                print(f"| {name} | {tname} | {d:.3g} |")
            verdict = "PASS" if (ok or gtype == "q4_k") else "FAIL"
            if gtype in ("f16", "bf16"):
                print(f"\n{gtype} (dense source): every tensor equal to the source's"
                      f"{' but for f16 subnormal rounding (<= 2^-25)' if gtype == 'f16' else ''}: {verdict}\n")
                if verdict == "FAIL":
                    failures.append(f"{gtype} export")
            elif gtype == "q4_1":
                print(f"\nq4_1: every tensor within the f16 rounding of m (2^-11 max|m| + 1e-6): {verdict}\n")
                if verdict == "FAIL":
                    failures.append("q4_1 dequantization")
            else:
                print(f"\nq4_k: largest added error {worst:.3g} (6-bit scales and mins)\n")
        gg = f"{tmp}/{gtypes[0]}.gguf"
        # Tokenizer.
        with open(f"{tmp}/text.txt", "w") as f:
            f.write(TEXT)
        lc = run([os.path.join(bindir, "llama-tokenize"), "-m", gg, "-f", f"{tmp}/text.txt", "--ids", "--log-disable"], env=env)
        lc_ids = json.loads(lc.strip().splitlines()[-1])
        ours = json.loads(run([a.awq, "tokenize", a.model, "--text", f"{tmp}/text.txt"]))["ids"]
        ours_g = json.loads(run([a.awq, "tokenize", gg, "--text", f"{tmp}/text.txt"]))["ids"]
        same = lc_ids == ours and lc_ids == ours_g
        print(f"## Tokenizer\n\nllama-tokenize vs awq tokenize (of the model directory, and of the GGUF) on a {len(TEXT)}-character text "
              f"(English, digits, punctuation, tabs, newlines, accents, CJK, emoji, Greek, Cyrillic): "
              f"{len(lc_ids)} vs {len(ours)} and {len(ours_g)} ids, {'identical' if same else 'DIFFERENT'}\n")
        if not same:
            failures.append("tokenizer")
            print(f"llama.cpp: {lc_ids}\n\nawq: {ours}\n\nawq (GGUF): {ours_g}\n")
        print("| tokenizer (tests/data/tokenizers) | GGUF model / pre | ids | llama.cpp == awq (dir) | llama.cpp == awq (GGUF) |\n|---|---|---|---|---|")
        for name in ("llama3", "qwen2", "gpt2", "llama2", "mistral"):
            src = os.path.join(ROOT, "tests/data/tokenizers", name)
            d = f"{tmp}/tok_{name}"
            shutil.copytree(a.model, d)
            for f in os.listdir(d):
                if f.startswith(("tokenizer", "special_tokens_map")):
                    os.remove(os.path.join(d, f))
            for f in os.listdir(src):
                shutil.copy(os.path.join(src, f), d)
            tj = json.load(open(os.path.join(d, "tokenizer.json")))
            top = max(list(tj["model"]["vocab"].values()) + [t["id"] for t in tj.get("added_tokens", [])])
            cfg = json.load(open(os.path.join(d, "config.json")))
            cfg["vocab_size"] = max(cfg["vocab_size"], top + 1)
            json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
            run([a.awq, "convert", d, "-o", f"{d}.gguf", "--to", "gguf", "-q"])
            meta = gguf.GGUFReader(f"{d}.gguf").fields
            kind = f'{meta["tokenizer.ggml.model"].contents()} / {meta["tokenizer.ggml.pre"].contents()}'
            lc = run([os.path.join(bindir, "llama-tokenize"), "-m", f"{d}.gguf", "-f", f"{tmp}/text.txt", "--ids", "--log-disable"], env=env)
            lc_ids = json.loads(lc.strip().splitlines()[-1])
            ours = json.loads(run([a.awq, "tokenize", d, "--text", f"{tmp}/text.txt"]))["ids"]
            ours_g = json.loads(run([a.awq, "tokenize", f"{d}.gguf", "--text", f"{tmp}/text.txt"]))["ids"]
            print(f"| {name} | {kind} | {len(ours)} | {'yes' if lc_ids == ours else 'NO'} | {'yes' if lc_ids == ours_g else 'NO'} |")
            if lc_ids != ours or lc_ids != ours_g:
                failures.append(f"tokenizer {name}")
        print()
        # Llama 3 rope scaling: a copy of the model with rope_scaling in config.json.
        l3 = f"{tmp}/llama3rope"
        shutil.copytree(a.model, l3)
        cfg3 = json.load(open(os.path.join(l3, "config.json")))
        cfg3["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 16}
        json.dump(cfg3, open(os.path.join(l3, "config.json"), "w"))
        run([a.awq, "convert", l3, "-o", f"{l3}.gguf", "--to", "gguf", "-q"])
        rf = [t for t in gguf.GGUFReader(f"{l3}.gguf").tensors if t.name == "rope_freqs.weight"]
        want = llama3_rope_factors(cfg3)
        same_rf = bool(rf) and np.array_equal(np.asarray(rf[0].data, dtype=np.float32), want)
        print(f"## Llama 3 rope scaling\n\nrope_freqs.weight ({len(want)} values) equals llama.cpp's converter's: {'yes' if same_rf else 'NO'}\n")
        if not same_rf:
            failures.append("rope_freqs")
        # Logits.
        exe = f"{tmp}/llamacpp_logits"
        run(["gcc", "-O2", "-o", exe, os.path.join(ROOT, "tools/llamacpp/llamacpp_logits.c"), f"-I{a.llamacpp}/include",
             f"-I{a.llamacpp}/ggml/include", f"-L{bindir}", "-lllama", f"-Wl,-rpath,{bindir}"])
        n_vocab = config["vocab_size"]
        print("## Logits\n\nllama.cpp's CPU matmuls quantize the activations to 8 bits (Q8_1 / Q8_K), so the logits differ by "
              "more than the weights do; a top-1 disagreement counts as a failure only where awq's top-1 leads its "
              "second by more than twice that position's largest |difference| (not a near-tie).\n")
        print("| GGUF | awq run on | prompt tokens | max abs diff / std (worst position) | top-1 agree | disagreements (gap / max diff) |\n|---|---|---|---|---|---|")
        cases = []
        for g in gtypes:
            cases += [(g, f"{tmp}/{g}.gguf", a.model, "model dir"), (g, f"{tmp}/{g}.gguf", f"{tmp}/{g}.gguf", "the GGUF")]
        cases.append((f"{'f16' if dense else 'q4_1'} + llama3 rope", f"{l3}.gguf", l3, "model dir"))
        for gtype, gpath, mdir, on in cases:
            ids = json.loads(run([exe, gpath, PROMPT, f"{tmp}/lc.f32", a.threads], env=env).strip().splitlines()[-1])
            lc_logits = np.fromfile(f"{tmp}/lc.f32", dtype=np.float32).reshape(len(ids), n_vocab)
            run([a.awq, "run", mdir, "-p", PROMPT, "-n", "1", "--threads", a.threads, "--logits-out", f"{tmp}/awq.safetensors"])
            from safetensors.numpy import load_file
            ours = load_file(f"{tmp}/awq.safetensors")["logits"]
            if ours.shape != lc_logits.shape:
                failures.append(f"logits shape {ours.shape} vs {lc_logits.shape}")
                continue
            diff = np.max(np.abs(ours - lc_logits), axis=1)
            rel = diff / np.std(lc_logits, axis=1)
            top = np.argmax(ours, axis=1) == np.argmax(lc_logits, axis=1)
            srt = np.sort(ours, axis=1)
            gap = srt[:, -1] - srt[:, -2]
            bad = [i for i in range(len(top)) if not top[i]]
            notes = ", ".join(f"pos {i}: {gap[i]:.3g} / {diff[i]:.3g}" for i in bad) or "-"
            print(f"| {gtype} | {on} | {len(ids)} | {rel.max():.4f} | {int(top.sum())}/{len(top)} | {notes} |")
            if any(gap[i] > 2 * diff[i] for i in bad) or rel.max() > 0.1:
                failures.append(f"logits ({gtype})")
        print()
    if failures:
        print("FAILED:", ", ".join(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
