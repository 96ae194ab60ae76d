"""Checks that `awq dequantize` output loads in transformers as a plain model and that its weights
equal the golden expected weights. Usage (venv from tools/requirements-golden.txt):
    ./build/release/awq dequantize tests/data/tiny-llama-awq -o /tmp/tl-dense
    python tools/verify_dequant_transformers.py /tmp/tl-dense tests/data/golden/tiny-llama-awq/expected.safetensors
"""
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer


def main(dense_dir: str, expected: str) -> int:
    model = AutoModelForCausalLM.from_pretrained(dense_dir, torch_dtype="auto")
    assert getattr(model.config, "quantization_config", None) is None, "quantization_config left in config.json"
    sd = model.state_dict()
    want = load_file(expected)
    bad = [k for k, v in want.items() if not torch.equal(sd[k], v)]
    tok = AutoTokenizer.from_pretrained(dense_dir)
    with torch.no_grad():
        logits = model.float()(tok("hello world", return_tensors="pt").input_ids).logits
    print(f"{type(model).__name__}: {len(want) - len(bad)}/{len(want)} modules bit-equal, logits finite: "
          f"{bool(torch.isfinite(logits).all())}")
    return 1 if bad or not torch.isfinite(logits).all() else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
