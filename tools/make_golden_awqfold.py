#!/usr/bin/env python3
"""Golden files for `awq compare` undoing AWQ's scale folds: a tiny dense Llama and what AutoAWQ
0.2.9's own quantizer (scale search and clip, its CPU aliasing mended) makes of it.

Run from the repository root in the venv of tools/requirements-awqref.txt:

    python tools/make_golden_awqfold.py            # regenerate tests/data/golden-fold/llama-mha
    python tools/make_golden_awqfold.py --verify   # rerun and compare with the files on disk

Writes tests/data/golden-fold/llama-mha/ (not under golden/: the format tests scan that folder):
  dense/    a tiny random LlamaForCausalLM (2 layers, hidden 64, 4 heads x 16, 4 kv heads, so no GQA
            and v->o is folded too; intermediate 128, vocab 256, untied lm_head) in bf16 like the
            bundled model. Three channels of each RMSNorm weight are 8-16x the others, so the
            activations carry outlier channels and AWQ's scales are far from 1.
  awq/      AutoAWQ's AwqQuantizer (w4 g32 zero point, GEMM, duo scaling, clip on: its defaults but
            the group size) on 16 random blocks of 64 token ids, with the aliasing bug mended as
            tools/autoawq_reference.py does; saved by AutoAWQ's save_quantized. Every linear stores
            Q(W·diag(s)); the norms store g/s; v_proj's and up_proj's rows are divided by s.
  rtn/      AutoAWQ's plain round to nearest of the same dense model (pseudo_quantize_tensor +
            WQLinear_GEMM packing, no search): s = 1 everywhere.
  scales.safetensors
            the scales AutoAWQ's search chose and apply_scale folded, as it returned them (f16),
            one tensor per scaling group named after the op they were folded into:
            model.layers.I.input_layernorm, .self_attn.v_proj, .post_attention_layernorm, .mlp.up_proj.
  meta.json versions, seeds, shapes, calibration.
Deterministic on one thread (torch.manual_seed); --verify reruns and compares every tensor.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from autoawq_gemm import import_autoawq  # noqa: E402
from autoawq_reference import quantizer_classes, rtn_quantize  # noqa: E402

OUT = os.path.join(os.path.dirname(HERE), "tests", "data", "golden-fold", "llama-mha")
SEED = 2026
GROUP = 32
BLOCKS, SEQLEN = 16, 64
CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=4, head_dim=16, vocab_size=256, max_position_embeddings=256,
              rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
QUANT_CONFIG = {"zero_point": True, "q_group_size": GROUP, "w_bit": 4, "version": "GEMM"}


def build_dense(path: str):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(LlamaConfig(**CONFIG, torch_dtype="bfloat16"))
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(0.6 + 0.8 * torch.rand(p.shape, generator=g))
                if "layers." in name:  # outlier channels before the scaled linears
                    idx = torch.randperm(p.shape[0], generator=g)[:3]
                    p[idx] *= 8 + 8 * torch.rand(3, generator=g)
            elif name.endswith(".weight") and p.dim() == 2:
                p.copy_(0.08 * torch.randn(p.shape, generator=g))
    model = model.to(torch.bfloat16).eval()
    model.save_pretrained(path, safe_serialization=True)
    gen = os.path.join(path, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)


def calib_blocks() -> list[list[int]]:
    g = torch.Generator().manual_seed(SEED + 2)
    ids = torch.randint(3, CONFIG["vocab_size"], (BLOCKS, SEQLEN), generator=g)
    return ids.tolist()


def quantize_awq(dense: str, out: str) -> dict[str, torch.Tensor]:
    from awq import AutoAWQForCausalLM
    _, Mended = quantizer_classes()
    chosen: dict[str, torch.Tensor] = {}

    class Recording(Mended):
        """The mended quantizer, recording each scaling group's chosen scales (what apply_scale folds)."""

        def _search_best_scale(self, module, prev_op, layers, inp, module2inspect=None, kwargs={}):
            got = super()._search_best_scale(module, prev_op, layers, inp, module2inspect, kwargs)
            prev_name, _, scales = got
            chosen[f"model.layers.{[id(m) for m in self.modules].index(id(module))}.{prev_name}"] = scales.detach().clone().contiguous()
            return got

    blocks = calib_blocks()
    model = AutoAWQForCausalLM.from_pretrained(dense, torch_dtype=torch.float16, device_map=None)
    model.quantize(None, quant_config=dict(QUANT_CONFIG), calib_data=blocks, max_calib_samples=BLOCKS,
                   max_calib_seq_len=SEQLEN, quantizer_cls=Recording)
    model.save_quantized(out)
    return chosen


def quantize_rtn(dense: str, out: str):
    from awq import AutoAWQForCausalLM
    import autoawq_reference
    autoawq_reference.QUANT_CONFIG = dict(QUANT_CONFIG)  # rtn_quantize reads the group size from it
    model = AutoAWQForCausalLM.from_pretrained(dense, torch_dtype=torch.float16, device_map=None)
    rtn_quantize(model)
    model.save_quantized(out)


def make(root: str) -> dict[str, torch.Tensor]:
    torch.set_num_threads(1)
    build_dense(os.path.join(root, "dense"))
    scales = quantize_awq(os.path.join(root, "dense"), os.path.join(root, "awq"))
    quantize_rtn(os.path.join(root, "dense"), os.path.join(root, "rtn"))
    save_file(scales, os.path.join(root, "scales.safetensors"), metadata={"format": "pt"})
    return scales


def tensors(root: str) -> dict[str, torch.Tensor]:
    out = {}
    for sub in ("dense", "awq", "rtn"):
        for k, v in load_file(os.path.join(root, sub, "model.safetensors")).items():
            out[f"{sub}/{k}"] = v
    for k, v in load_file(os.path.join(root, "scales.safetensors")).items():
        out[f"scales/{k}"] = v
    return out


def main() -> int:
    awq = import_autoawq()
    import transformers
    if "--verify" in sys.argv[1:]:
        with tempfile.TemporaryDirectory() as tmp:
            make(tmp)
            got, exp = tensors(tmp), tensors(OUT)
        assert sorted(got) == sorted(exp), "tensor names differ"
        for k in got:
            assert torch.equal(got[k], exp[k]), f"{k} differs"
        print(f"{len(got)} tensors identical")
        return 0
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    scales = make(OUT)
    meta = {
        "made_by": "tools/make_golden_awqfold.py",
        "peer": f"autoawq=={awq.__version__} AwqQuantizer (duo scaling, clip on; CPU aliasing mended as in "
                f"tools/autoawq_reference.py), torch=={torch.__version__} CPU fp16, "
                f"transformers=={transformers.__version__}",
        "seed": SEED, "quant_config": QUANT_CONFIG, "config": CONFIG,
        "calibration": {"blocks": BLOCKS, "seqlen": SEQLEN, "ids": "torch.randint(3, vocab) seeded SEED + 2"},
        "scales": {k: {"n": v.numel(), "min": float(v.min()), "max": float(v.max())} for k, v in sorted(scales.items())},
    }
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(meta["scales"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
