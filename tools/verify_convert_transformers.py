"""End to end: transformers loads `awq convert --to compressed-tensors` output (compressed-tensors
decompresses it on CPU) and its fp16 logits equal those of `awq dequantize` output exactly.

Usage (from the repository root, in /work/venv-tools; AWQ = the built binary):
    python tools/verify_convert_transformers.py build/check/awq [MODEL]
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden_others  # noqa: E402,F401  (compressed-tensors 0.13 import shim for transformers 4.51)

import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402


def main(argv):
    awq = os.path.abspath(argv[1])
    model = argv[2] if len(argv) > 2 else os.path.join(os.path.dirname(HERE), "tests", "data", "tiny-llama-awq")
    with tempfile.TemporaryDirectory() as tmp:
        ct, dense = os.path.join(tmp, "ct"), os.path.join(tmp, "dense")
        subprocess.run([awq, "convert", model, "-o", ct, "--to", "compressed-tensors", "-q"], check=True)
        subprocess.run([awq, "dequantize", model, "-o", dense, "-q"], check=True)
        ids = torch.tensor([[1, 5, 17, 42, 99, 200, 3, 8, 11, 2]])
        a = AutoModelForCausalLM.from_pretrained(ct, torch_dtype=torch.float16)
        b = AutoModelForCausalLM.from_pretrained(dense, torch_dtype=torch.float16)
        with torch.no_grad():
            la, lb = a(ids).logits, b(ids).logits
        diff = (la.float() - lb.float()).abs().max().item()
        print(f"transformers {type(a).__name__} from compressed-tensors output vs dequantized: max |logit diff| = {diff}")
        return 0 if diff == 0.0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
