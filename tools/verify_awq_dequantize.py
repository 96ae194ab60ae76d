#!/usr/bin/env python3
"""Checks that `awq dequantize` decodes an AutoAWQ GEMM checkpoint (an `awq quantize` output, or
AutoAWQ's own) to the same weights as AutoAWQ 0.2.9's own dequantize_gemm
(awq.utils.packing_utils), for every quantized linear, and that every other tensor is carried
unchanged.

    /work/venv/bin/python tools/verify_awq_dequantize.py QUANT_DIR [--awq build/release/awq] \\
        [--dtype f16|f32] [--dense DENSE_DIR]

Without --dense, runs `AWQ dequantize QUANT_DIR -o TMP --dtype DTYPE` itself. Reference per
linear: dequantize_gemm(qweight, qzeros, scales)ᵀ with the stored f16 scales (f16 arithmetic:
(q - z) · s rounded once to f16), or, for --dtype f32, with the scales widened to f32 (the exact
product). Compared bit for bit; a difference is reported per linear (elements differing, largest
|Δ|, largest difference in units in the last place). Exit status 0 only when every linear and
every other tensor is bit-identical.
Venv: tools/requirements-awqref.txt.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from autoawq_gemm import gemm_params, import_autoawq, load_tensors, read_config  # noqa: E402


def ulps(a: torch.Tensor, b: torch.Tensor) -> int:
    """Largest distance in representable values between same-dtype a and b (sign-magnitude)."""
    ibits = {torch.float16: torch.int16, torch.float32: torch.int32}[a.dtype]
    def ordered(t):
        i = t.view(ibits).long()
        return torch.where(i < 0, -(i & ((1 << (8 * t.element_size() - 1)) - 1)), i)
    return int((ordered(a) - ordered(b)).abs().max()) if a.numel() else 0


def compare(quant_dir: str, dense_dir: str, dtype: torch.dtype) -> int:
    import_autoawq()
    from awq.utils.packing_utils import dequantize_gemm
    bits, group = gemm_params(read_config(quant_dir)) or (None, None)
    if bits is None:
        raise SystemExit(f"{quant_dir}: not an AutoAWQ GEMM checkpoint")
    quant, dense = load_tensors(quant_dir), load_tensors(dense_dir)
    linears = sorted(k[: -len(".qweight")] for k in quant if k.endswith(".qweight"))
    bad, total = 0, 0
    for m in linears:
        scales = quant[m + ".scales"]
        ref = dequantize_gemm(quant[m + ".qweight"], quant[m + ".qzeros"],
                              scales if dtype == torch.float16 else scales.to(dtype), bits, group).t().contiguous()
        got = dense.get(m + ".weight")
        if got is None or got.dtype != dtype or got.shape != ref.shape:
            print(f"{m}: awq dequantize gives {None if got is None else (got.dtype, tuple(got.shape))}, "
                  f"expected {dtype} {tuple(ref.shape)}")
            bad += 1
            continue
        diff = int((got.view(torch.uint8) != ref.view(torch.uint8)).view(-1, ref.element_size()).any(1).sum())
        total += ref.numel()
        if diff:
            bad += 1
            print(f"{m}: {diff}/{ref.numel()} elements differ, max |Δ| {float((got.float() - ref.float()).abs().max()):.3g}, "
                  f"max {ulps(got, ref)} ulp")
    others = [k for k in quant if not k.endswith((".qweight", ".qzeros", ".scales"))]
    for k in others:
        got, want = dense.get(k), quant[k].to(dtype) if quant[k].is_floating_point() else quant[k]
        if got is None or got.dtype != want.dtype or not torch.equal(got, want):
            print(f"{k}: not carried unchanged ({None if got is None else got.dtype}, expected {want.dtype})")
            bad += 1
    print(f"{quant_dir}: {len(linears) - min(bad, len(linears))}/{len(linears)} linears ({total} weights) "
          f"bit-identical to AutoAWQ's dequantize_gemm in {str(dtype).replace('torch.', '')}; "
          f"{len(others)} other tensors checked; {bad} problem(s)")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("quant_dir")
    ap.add_argument("--awq", default="build/release/awq", help="the awq binary (when --dense is not given)")
    ap.add_argument("--dense", help="an existing `awq dequantize` output of QUANT_DIR")
    ap.add_argument("--dtype", default="f16", choices=["f16", "f32"])
    args = ap.parse_args()
    dtype = {"f16": torch.float16, "f32": torch.float32}[args.dtype]
    if args.dense:
        return compare(args.quant_dir, args.dense, dtype)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "dense")
        subprocess.run([args.awq, "dequantize", args.quant_dir, "-o", out, "--dtype", args.dtype], check=True,
                       stdout=subprocess.DEVNULL)
        return compare(args.quant_dir, out, dtype)


if __name__ == "__main__":
    sys.exit(main())
