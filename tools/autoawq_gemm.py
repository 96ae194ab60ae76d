"""Shared helpers of the AutoAWQ reference tools (tools/autoawq_reference.py,
tools/perplexity_reference.py, tools/verify_awq_dequantize.py).

- import_autoawq(): AutoAWQ 0.2.9 without its download-only `datasets` dependency.
- load_tensors(dir): every tensor of a safetensors checkpoint (single file or sharded index).
- dense_state_dict(dir): the checkpoint with every AutoAWQ GEMM linear decoded by AutoAWQ's own
  `awq.utils.packing_utils.dequantize_gemm` (f16, [out, in]); other tensors as stored.
- load_f32_model(dir): transformers' own model class in f32 on those weights, so an AutoAWQ GEMM
  checkpoint runs without autoawq's CUDA kernels (quantization_config dropped from the config).
- calibration_blocks(ids, n, L): the calibration cut `awq quantize` uses (src/quant/quantize_model.cc
  calibration_blocks): consecutive, non-overlapping blocks of exactly L tokens from the start of
  the tokenized text (BOS once, at the start of the text), at most n of them, remainder dropped.
- cpu_name(): the CPU's model name as lscpu prints it.

Venv: tools/requirements-awqref.txt.
"""
from __future__ import annotations

import json
import os
import sys
import types

import torch
from safetensors.torch import load_file


def import_autoawq():
    """Imports AutoAWQ 0.2.9. Its `datasets` import serves only pile-val downloads, which these
    tools never use (they pass token blocks), so a stand-in is registered when it is missing."""
    import transformers  # noqa: F401  (before the stand-in, so transformers sees the real state)
    if "datasets" not in sys.modules:
        try:
            import datasets  # noqa: F401
        except ImportError:
            stub = types.ModuleType("datasets")
            stub.load_dataset = None
            sys.modules["datasets"] = stub
    import awq
    if awq.__version__ != "0.2.9":
        raise SystemExit(f"AutoAWQ {awq.__version__} found; these tools are written for 0.2.9")
    return awq


def load_tensors(model_dir: str) -> dict[str, torch.Tensor]:
    """All tensors of MODEL_DIR's model.safetensors or model.safetensors.index.json shards."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out: dict[str, torch.Tensor] = {}
    for name in files:
        for k, v in load_file(os.path.join(model_dir, name)).items():
            if k in out:
                raise SystemExit(f"{model_dir}: tensor {k} stored twice")
            out[k] = v
    return out


def read_config(model_dir: str) -> dict:
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)


def gemm_params(config: dict) -> tuple[int, int] | None:
    """(bits, group_size) when config.json declares an AutoAWQ GEMM checkpoint, else None."""
    q = config.get("quantization_config")
    if not q:
        return None
    if q.get("quant_method") != "awq" or str(q.get("version", "gemm")).lower() != "gemm":
        raise SystemExit(f"quantization_config {q} is not AutoAWQ GEMM")
    if not q.get("zero_point", True):
        raise SystemExit("symmetric (zero_point false) AutoAWQ GEMM: dequantize_gemm needs qzeros")
    return int(q.get("bits", q.get("w_bit", 4))), int(q.get("group_size", q.get("q_group_size", 128)))


def dense_state_dict(model_dir: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(state dict, names of the decoded linears). Each `<m>.qweight/.qzeros/.scales` triple
    becomes `<m>.weight` = dequantize_gemm(...)ᵀ in the scales' dtype (f16 for AutoAWQ)."""
    import_autoawq()
    from awq.utils.packing_utils import dequantize_gemm
    config = read_config(model_dir)
    params = gemm_params(config)
    tensors = load_tensors(model_dir)
    out: dict[str, torch.Tensor] = {}
    decoded: list[str] = []
    for k, v in tensors.items():
        if k.endswith(".qweight"):
            if params is None:
                raise SystemExit(f"{model_dir}: {k} but no quantization_config")
            base = k[: -len(".qweight")]
            w = dequantize_gemm(v, tensors[base + ".qzeros"], tensors[base + ".scales"], *params)
            out[base + ".weight"] = w.t().contiguous()
            decoded.append(base)
        elif k.endswith((".qzeros", ".scales")):
            if k.rsplit(".", 1)[0] + ".qweight" not in tensors:
                raise SystemExit(f"{model_dir}: {k} without its qweight")
        else:
            out[k] = v
    return out, sorted(decoded)


def load_f32_model(model_dir: str):
    """transformers' model for MODEL_DIR in f32 (eval mode): dense checkpoints as stored,
    AutoAWQ GEMM checkpoints decoded by AutoAWQ's dequantize_gemm. Every parameter must come
    from the checkpoint (a tied lm_head from the embedding)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    config = AutoConfig.from_pretrained(model_dir)
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
    sd, _ = dense_state_dict(model_dir)
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    missing = [m for m in missing if m not in tied]
    if missing or unexpected:
        raise SystemExit(f"{model_dir}: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    return model.float().eval()


def calibration_blocks(ids: list[int], samples: int, seqlen: int) -> list[list[int]]:
    """`awq quantize`'s calibration cut (see the module docstring)."""
    return [ids[b * seqlen:(b + 1) * seqlen] for b in range(samples) if (b + 1) * seqlen <= len(ids)]


def cpu_name() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"
