#!/usr/bin/env python3
"""Golden reference models for the forward pass: tiny random checkpoints + transformers' logits.

Run from the repository root in a venv made from tools/requirements-models.txt (CPU only):

    python tools/make_golden_models.py            # (re)write tests/data/models/<name>/
    python tools/make_golden_models.py --check    # recompute the logits, compare with the files
    python tools/make_golden_models.py --kjv      # only the bundled model's goldens (after
                                                  # tools/make_bundled_model.py)

Each case is a seeded random model of one architecture, saved by transformers'
save_pretrained (config.json + model.safetensors), reloaded from disk, cast to f32 and run by
transformers' own modelling class (eval, no_grad). The logits of two fixed prompts are written to
<dir>/logits.safetensors: `input_ids` int32 [2, T] and `logits` f32 [2, T, vocab].

The AWQ case is a random Llama quantized by AutoAWQ 0.2.9's own quantizer (GEMM, w4, g32, zero
point) on CPU with a short calibration text; its reference logits come from a dense Llama whose
linears are AutoAWQ's own `dequantize_gemm` of the saved tensors, run in f32.

See tests/data/models/README.md for what each case exercises.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import types
import warnings

import torch
import transformers  # noqa: F401  (import before stubbing `datasets`)
from safetensors.torch import load_file, save_file
from transformers import (
    LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
    Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM,
)

warnings.filterwarnings("ignore")
torch.set_num_threads(2)

OUT_ROOT = os.path.join("tests", "data", "models")
T = 12           # prompt length
N_PROMPTS = 2

# Shared tiny shape (head_dim = 64 / 4 = 16 unless a case sets head_dim).
BASE = dict(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    intermediate_size=128, max_position_embeddings=256, hidden_act="silu",
    # 1/sqrt(hidden): activations, attention scores and logits all O(1), so every position has
    # a clear argmax and nothing is lost in the noise.
    initializer_range=0.125,
    bos_token_id=1, eos_token_id=2, pad_token_id=None,
)


def cases():
    """(name, config class, model class, config kwargs, stored dtype, note) for each golden."""
    return [
        ("llama3", LlamaConfig, LlamaForCausalLM,
         dict(BASE, vocab_size=512, rope_theta=500000.0, tie_word_embeddings=False,
              rms_norm_eps=1e-5,
              # original_max_position_embeddings is set small so that the llama3 frequency
              # rescaling changes the low- and mid-frequency rotary pairs within 12 positions
              # (with 8192 the effect on a 12-token prompt would be ~1e-4 rad, untestable).
              rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
         torch.bfloat16, "Llama 3 style: rope_scaling llama3, rope_theta 500000, untied lm_head, bf16"),
        ("llama2", LlamaConfig, LlamaForCausalLM,
         dict(BASE, vocab_size=320, rope_theta=10000.0, tie_word_embeddings=True, rms_norm_eps=1e-6),
         torch.float32, "Llama 2 style: no rope scaling, theta 10000, tied embeddings, f32"),
        ("mistral", MistralConfig, MistralForCausalLM,
         dict(BASE, vocab_size=384, rope_theta=1000000.0, tie_word_embeddings=False,
              rms_norm_eps=1e-5, sliding_window=4096),
         torch.bfloat16, "Mistral: untied, theta 1e6, sliding_window 4096 (> prompt), bf16"),
        ("qwen2", Qwen2Config, Qwen2ForCausalLM,
         dict(BASE, vocab_size=448, rope_theta=1000000.0, tie_word_embeddings=True,
              rms_norm_eps=1e-6, use_sliding_window=False),
         torch.float32, "Qwen2: q/k/v_proj bias (random), tied embeddings, f32"),
        ("qwen3", Qwen3Config, Qwen3ForCausalLM,
         dict(BASE, vocab_size=256, head_dim=32, rope_theta=1000000.0, tie_word_embeddings=True,
              rms_norm_eps=1e-6, attention_bias=False, use_sliding_window=False),
         torch.bfloat16, "Qwen3: q_norm/k_norm (random), head_dim 32 != 64/4, tied, bf16"),
    ]


MIN_GAP = 0.04   # top1 - top2 logit gap, in units of the prompt's logit std, at every position


def prompts(model: torch.nn.Module, vocab: int, seed: int) -> torch.Tensor:
    """Two seeded random prompts of T ids, chosen so that at every position the top logit leads
    the second by >= MIN_GAP std: 4x the comparison bar (max|diff|/std < 1e-2), so a forward
    pass within the bar also has the same argmax and a near-tie cannot make the test flaky."""
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for _ in range(50):
        cand = torch.randint(0, vocab, (16, T), generator=g, dtype=torch.int64)
        with torch.no_grad():
            lg = model(input_ids=cand).logits.float()
        top2 = lg.topk(2, dim=-1).values
        gap = (top2[..., 0] - top2[..., 1]).min(dim=-1).values / lg.flatten(1).std(dim=-1)
        chosen += [cand[i] for i in range(16) if gap[i] >= MIN_GAP]
        if len(chosen) >= N_PROMPTS:
            return torch.stack(chosen[:N_PROMPTS])
    raise SystemExit("no prompts with a clear argmax at every position")


def randomize_extras(model: torch.nn.Module, seed: int) -> None:
    """HF initialises norms to 1 and biases to 0; randomise them so a forward pass that ignores
    a norm weight or a bias fails the comparison."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def f32_logits(model_cls, path: str, ids: torch.Tensor) -> torch.Tensor:
    model = model_cls.from_pretrained(path, torch_dtype=torch.float32).float().eval()
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def margin_stats(logits: torch.Tensor) -> dict:
    top2 = logits.topk(2, dim=-1).values
    gap = (top2[..., 0] - top2[..., 1]).min().item()
    std = logits.std().item()
    return {"logits_std": round(std, 4), "min_top1_top2_gap_over_std": round(gap / std, 4)}


def write_logits(dirpath: str, ids: torch.Tensor, logits: torch.Tensor) -> None:
    save_file({"input_ids": ids.to(torch.int32).contiguous(),
               "logits": logits.to(torch.float32).contiguous()},
              os.path.join(dirpath, "logits.safetensors"))


def make_dense_case(index: int, name, cfg_cls, model_cls, kwargs, dtype) -> dict:
    seed = 1000 + index
    torch.manual_seed(seed)
    config = cfg_cls(**kwargs)
    model = model_cls(config).eval()
    randomize_extras(model, seed + 1)
    out = os.path.join(OUT_ROOT, name)
    shutil.rmtree(out, ignore_errors=True)
    model.to(dtype).save_pretrained(out, safe_serialization=True)
    gen = os.path.join(out, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    reloaded = model_cls.from_pretrained(out, torch_dtype=torch.float32).float().eval()
    ids = prompts(reloaded, config.vocab_size, seed + 2)
    logits = f32_logits(model_cls, out, ids)
    write_logits(out, ids, logits)
    info = {"name": name, "arch": model_cls.__name__, "dtype": str(dtype).replace("torch.", "")}
    info.update(margin_stats(logits))
    info.update(sensitivity(name, model_cls, out, ids, logits))
    return info


def sensitivity(name, model_cls, path, ids, logits) -> dict:
    """Evidence that the golden discriminates: how far the logits move when the feature the
    case exists for is switched off (rope scaling, bias, q/k norm)."""
    model = model_cls.from_pretrained(path, torch_dtype=torch.float32).float().eval()
    cfg = model.config
    with torch.no_grad():
        if name == "llama3":
            cfg2 = LlamaConfig(**{k: v for k, v in cfg.to_dict().items() if k != "rope_scaling"})
            m2 = LlamaForCausalLM(cfg2).eval()
            m2.load_state_dict(model.state_dict())
            alt = m2(input_ids=ids).logits
            what = "without llama3 rope scaling"
        elif name == "qwen2":
            for mod in model.modules():
                if isinstance(mod, torch.nn.Linear) and mod.bias is not None:
                    mod.bias.zero_()
            alt = model(input_ids=ids).logits
            what = "with q/k/v biases zeroed"
        elif name == "qwen3":
            for n, p in model.named_parameters():
                if "q_norm" in n or "k_norm" in n:
                    p.fill_(1.0)
            alt = model(input_ids=ids).logits
            what = "with q_norm/k_norm weights set to 1"
        else:
            return {}
    rel = ((alt - logits).abs().max() / logits.std()).item()
    return {"sensitivity": f"max|diff|/std = {rel:.3f} {what}"}


# ---------------------------------------------------------------------------------------------
# AutoAWQ case

CALIB_TEXT = [
    "In the beginning God created the heaven and the earth.",
    "And the earth was without form, and void; and darkness was upon the face of the deep.",
    "And the Spirit of God moved upon the face of the waters.",
    "And God said, Let there be light: and there was light.",
    "And God saw the light, that it was good: and God divided the light from the darkness.",
    "And God called the light Day, and the darkness he called Night.",
    "And the evening and the morning were the first day.",
    "And God said, Let there be a firmament in the midst of the waters.",
]


class ByteTokenizer:
    """The random model has no tokenizer; AutoAWQ's get_calib_dataset only calls encode()."""

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))


def import_awq():
    # AutoAWQ imports `datasets` only to download calibration sets; we pass text directly.
    if "datasets" not in sys.modules:
        try:
            import datasets  # noqa: F401
        except ImportError:
            stub = types.ModuleType("datasets")
            stub.load_dataset = None
            sys.modules["datasets"] = stub
    import awq  # noqa: F401
    from awq import AutoAWQForCausalLM
    from awq.utils.packing_utils import dequantize_gemm
    return AutoAWQForCausalLM, dequantize_gemm


def make_awq_case(index: int) -> dict:
    AutoAWQForCausalLM, dequantize_gemm = import_awq()
    name, group = "llama-awq-gemm-g32", 32
    seed = 1000 + index
    torch.manual_seed(seed)
    config = LlamaConfig(**dict(BASE, vocab_size=256, rope_theta=10000.0,
                                tie_word_embeddings=False, rms_norm_eps=1e-5))
    model = LlamaForCausalLM(config).eval()
    randomize_extras(model, seed + 1)
    out = os.path.join(OUT_ROOT, name)
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        model.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
        awq_model = AutoAWQForCausalLM.from_pretrained(tmp, device_map=None)
        quant_config = {"zero_point": True, "q_group_size": group, "w_bit": 4, "version": "GEMM"}
        awq_model.quantize(ByteTokenizer(), quant_config=quant_config, calib_data=CALIB_TEXT,
                           max_calib_seq_len=64, max_calib_samples=len(CALIB_TEXT),
                           # AutoAWQ's clip search asserts out_features % 64 == 0; the GQA
                           # v_proj here has 2 heads x 16 = 32 outputs. Scale search still runs.
                           apply_clip=False)
        awq_model.save_quantized(out)
    for extra in ("generation_config.json",):
        p = os.path.join(out, extra)
        if os.path.exists(p):
            os.remove(p)

    # Reference: AutoAWQ's own dequantize_gemm into a dense Llama, transformers in f32.
    saved = load_file(os.path.join(out, "model.safetensors"))
    for k, v in saved.items():
        if v.is_floating_point() and not torch.isfinite(v.float()).all():
            raise SystemExit(f"{name}: non-finite values in {k}")
    dense = {}
    for k, v in saved.items():
        if k.endswith(".qweight"):
            base = k[: -len(".qweight")]
            w = dequantize_gemm(v, saved[base + ".qzeros"], saved[base + ".scales"], 4, group)
            dense[base + ".weight"] = w.float().t().contiguous()   # [in, out] -> [out, in]
        elif k.endswith((".qzeros", ".scales")):
            continue
        else:
            dense[k] = v.float()
    ref = LlamaForCausalLM(LlamaConfig(**dict(BASE, vocab_size=256, rope_theta=10000.0,
                                              tie_word_embeddings=False, rms_norm_eps=1e-5)))
    missing, unexpected = ref.load_state_dict(dense, strict=False)
    missing = [m for m in missing if "rotary" not in m]
    if missing or unexpected:
        raise SystemExit(f"{name}: state dict mismatch missing={missing} unexpected={unexpected}")
    ref = ref.float().eval()
    ids = prompts(ref, 256, seed + 2)
    with torch.no_grad():
        logits = ref(input_ids=ids).logits.float()
    write_logits(out, ids, logits)
    # How far quantization moved the model (shows the quantized weights are what is tested).
    with torch.no_grad():
        orig = model.float()(input_ids=ids).logits
    info = {"name": name, "arch": "LlamaForCausalLM (AutoAWQ GEMM w4 g32 zp)", "dtype": "awq-gemm"}
    info.update(margin_stats(logits))
    info["sensitivity"] = (f"max|diff|/std = {((orig - logits).abs().max() / logits.std()).item():.3f}"
                           " against the unquantized f32 model")
    return info


# ---------------------------------------------------------------------------------------------
# The bundled model (models/kjv-llama, made by tools/make_bundled_model.py)

KJV_DIR = os.path.join("models", "kjv-llama")
KJV_PROMPT = "In the beginning God created the heaven and the earth."
KJV_TOKEN_TEXTS = [
    KJV_PROMPT,
    "And God said, Let there be light: and there was light.",
    "",
    "  leading spaces,   runs   of spaces,\ttabs\n\nand blank lines\n",
    "Numbers: 7, 42, 1611, 31102 and 3.14159; Psalm 23:1-6.",
    "I'll say it's THEIR'S, we've done; you'd've?!",
    "Unicode: naïve café, Straße, ελληνικά, русский, 日本語, עברית, emoji 🙂🎉👍🏽.",
    "<|begin_of_text|>special tokens written in the text<|end_of_text|>",
    "line one\r\nline two\rline three\n\n\n   \n",
]


def make_kjv() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(KJV_DIR)
    model = AutoModelForCausalLM.from_pretrained(KJV_DIR, torch_dtype=torch.float32).float().eval()
    ids = torch.tensor([tok(KJV_PROMPT).input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    save_file({"input_ids": ids.to(torch.int32).contiguous(), "logits": logits.contiguous()},
              os.path.join(OUT_ROOT, "kjv-llama-logits.safetensors"))
    cases = []
    for text in KJV_TOKEN_TEXTS:
        enc = tok(text).input_ids
        cases.append({"text": text, "ids": enc,
                      "ids_without_special": tok(text, add_special_tokens=False).input_ids,
                      "decoded": tok.decode(enc, skip_special_tokens=True)})
    doc = {"tokenizer": "models/kjv-llama/tokenizer.json",
           "made_by": "tools/make_golden_models.py --kjv (transformers AutoTokenizer, i.e. the "
                      "tokenizers library, tokenizers==" + __import__("tokenizers").__version__ + ")",
           "ids": "tokenizer(text).input_ids: with the BOS the post-processor adds",
           "ids_without_special": "tokenizer(text, add_special_tokens=False).input_ids",
           "decoded": "tokenizer.decode(ids, skip_special_tokens=True)",
           "cases": cases}
    with open(os.path.join(OUT_ROOT, "kjv-llama-tokens.json"), "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    info = {"name": "kjv-llama", "prompt_tokens": ids.shape[1]}
    info.update(margin_stats(logits))
    print(json.dumps(info))


def check() -> int:
    bad = 0
    for i, (name, _, model_cls, _, _, _) in enumerate(cases()):
        d = os.path.join(OUT_ROOT, name)
        ref = load_file(os.path.join(d, "logits.safetensors"))
        got = f32_logits(model_cls, d, ref["input_ids"].long())
        diff = (got - ref["logits"]).abs().max().item()
        print(f"{name}: max|diff| {diff:.3g}")
        bad += diff > 1e-5
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="recompute and compare, write nothing")
    ap.add_argument("--skip-awq", action="store_true", help="only the dense cases")
    ap.add_argument("--kjv", action="store_true",
                    help="only the bundled model's golden files (kjv-llama-logits.safetensors, "
                         "kjv-llama-tokens.json) from models/kjv-llama")
    args = ap.parse_args()
    if args.check:
        return check()
    if args.kjv:
        make_kjv()
        return 0
    os.makedirs(OUT_ROOT, exist_ok=True)
    infos = []
    for i, (name, cfg_cls, model_cls, kw, dtype, note) in enumerate(cases()):
        info = make_dense_case(i, name, cfg_cls, model_cls, kw, dtype)
        info["note"] = note
        infos.append(info)
        print(json.dumps(info))
    if not args.skip_awq:
        info = make_awq_case(len(infos))
        infos.append(info)
        print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
