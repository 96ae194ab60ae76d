#!/usr/bin/env python3
"""Golden files for `awq quantize --method rtn`: dense fp16 models and what AutoAWQ's own code makes of them.

Run from the repository root in the venv of tools/requirements-golden.txt (autoawq 0.2.9 with
--no-deps, torch 2.6 CPU, transformers 4.51.3):

    python tools/make_golden_quantize.py            # regenerate tests/data/quantize/rtn-*
    python tools/make_golden_quantize.py --verify   # recompute and compare with the files on disk

Per case (tests/data/quantize/rtn-<case>/):
  dense/     a tiny random model saved by transformers' save_pretrained in fp16 (AutoAWQ loads
             models in fp16, so its first step, `.half()`, changes nothing and both sides start
             from the same weights);
  expected.safetensors
             the qweight / qzeros / scales (and bias) of every decoder linear after AutoAWQ's own
             AwqQuantizer._apply_quant = pseudo_quantize_tensor (round-to-nearest with zero point,
             in torch fp16 arithmetic) + WQLinear_GEMM.from_linear packing;
  meta.json  versions, group size, shapes.
The models are built by tools/make_golden_awq.py's build_model (seeded) and quantized by its
quantize_with_autoawq (AutoAWQ's code imported, none copied). No calibration: plain RTN, which is
what `awq quantize --method rtn` must reproduce byte for byte.
"""
from __future__ import annotations

import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden_awq as mga  # noqa: E402  (stubs `datasets`, imports awq)
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

GOLDEN = os.path.join(mga.DATA, "quantize")  # not golden/: that folder holds checkpoints the format tests scan

SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=256)
CASES = {
    # name: (arch, group_size, seed, config overrides)
    "rtn-llama-g32": ("llama", 32, 101, dict(SHAPE, tie_word_embeddings=True)),
    "rtn-qwen2-g64": ("qwen2", 64, 102, dict(SHAPE, tie_word_embeddings=False)),
    "rtn-llama-g128": ("llama", 128, 103, dict(SHAPE, hidden_size=128, intermediate_size=256,
                                                         num_hidden_layers=1, tie_word_embeddings=False)),
}


def make_case(arch, group_size, seed, cfg, dense_dir):
    model = mga.build_model(arch, seed, **cfg)
    if dense_dir is not None:
        model.save_pretrained(dense_dir, safe_serialization=True)
        mga.canonicalize_safetensors_metadata(os.path.join(dense_dir, "model.safetensors"))
        os.remove(os.path.join(dense_dir, "generation_config.json"))
    awq_model, _ = mga.quantize_with_autoawq(model, arch, "gemm", group_size)
    sd = awq_model.model.state_dict()
    out = {}
    for k, v in sd.items():
        if k.startswith("model.layers.") and k.rsplit(".", 1)[1] in ("qweight", "qzeros", "scales", "bias"):
            out[k] = v.detach().contiguous().clone()
    return out


def main():
    verify = "--verify" in sys.argv[1:]
    for case, (arch, g, seed, cfg) in CASES.items():
        d = os.path.join(GOLDEN, case)
        if verify:
            got = make_case(arch, g, seed, cfg, None)
            exp = load_file(os.path.join(d, "expected.safetensors"))
            assert sorted(got) == sorted(exp), case
            for k in got:
                assert torch.equal(got[k], exp[k]), f"{case}: {k} differs"
            print(f"{case}: {len(got)} tensors identical")
            continue
        if os.path.exists(d):
            shutil.rmtree(d)
        os.makedirs(d)
        out = make_case(arch, g, seed, cfg, os.path.join(d, "dense"))
        save_file(out, os.path.join(d, "expected.safetensors"), metadata={"format": "pt"})
        meta = {
            "made_by": "tools/make_golden_quantize.py",
            "peer": f"autoawq=={mga.VERSIONS['awq']} AwqQuantizer._apply_quant (pseudo_quantize_tensor + "
                    f"WQLinear_GEMM.from_linear), torch=={mga.VERSIONS['torch']} CPU fp16, "
                    f"transformers=={mga.VERSIONS['transformers']}",
            "arch": arch, "bits": 4, "group_size": g, "zero_point": True, "seed": seed,
            "tensors": {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sorted(out.items())},
        }
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.write("\n")
        print(f"{case}: {len(out)} tensors")


if __name__ == "__main__":
    main()
