"""Load `awq convert` output with the peers' own code and check it dequantizes to the source's
golden weights bit for bit.

For every golden case whose dense weights are RNE(s*(q-z)) (AutoAWQ GEMM/GEMV, GPTQ, compressed-
tensors), convert it with the built `awq` binary into each target below, load the result with the
target's own library and dequantize every module:

  autoawq-gemm        awq.utils.packing_utils.dequantize_gemm (AutoAWQ 0.2.9)
  gptq (v1)           auto_gptq QuantLinear torch forward on an identity input (AutoGPTQ 0.7.1;
                      qlinear_cuda_old, or qlinear_cuda for desc_act=True, as AutoGPTQ chooses)
  compressed-tensors  PackedQuantizationCompressor.decompress_weight with the QuantizationArgs
                      parsed from our config.json (compressed-tensors 0.13.0)

The result must equal the source case's expected.safetensors (made by the source's own peer code)
bit for bit. GEMV / GEMV_fast have no CPU dequantizer in AutoAWQ; they are covered by the C++
round-trip tests (our packer reproduces AutoAWQ-written files byte for byte).

Usage (from the repository root, in /work/venv-tools):
    python tools/verify_convert_peers.py build/check/awq
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden_others as peers  # noqa: E402  (import shims for compressed-tensors / auto_gptq)

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from awq.utils.packing_utils import dequantize_gemm  # noqa: E402
from compressed_tensors.quantization import QuantizationConfig  # noqa: E402

ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")
INTEGER_FORMATS = {"autoawq-gemm", "autoawq-gemv", "gptq", "compressed-tensors"}


def module_dims(sd, name, fmt):
    if fmt == "autoawq-gemm":
        k, n8 = sd[name + ".qweight"].shape
        return k, n8 * 8
    if fmt == "gptq":
        k8, n = sd[name + ".qweight"].shape
        return k8 * 8, n
    n, k = [int(x) for x in sd[name + ".weight_shape"]]
    return k, n


def dequant(out_dir, fmt, name, sd, cfg):
    qc = cfg["quantization_config"]
    k, n = module_dims(sd, name, fmt)
    if fmt == "autoawq-gemm":
        g = qc["group_size"] if qc["group_size"] != -1 else k
        w = dequantize_gemm(sd[name + ".qweight"], sd[name + ".qzeros"], sd[name + ".scales"], 4, g)
        return w.T.contiguous()
    if fmt == "gptq":
        g = qc["group_size"] if qc["group_size"] != -1 else k
        # the class AutoGPTQ 0.7.1 itself loads: qlinear_cuda_old, or qlinear_cuda for desc_act=True
        cls = peers.qlinear_cuda.QuantLinear if qc.get("desc_act") else peers.qlinear_cuda_old.QuantLinear
        return peers._peer_gptq_dequant(cls, sd, name, g, k, n)
    args = QuantizationConfig.model_validate(qc).config_groups["group_0"].weights
    pqc = peers.PackedQuantizationCompressor(config=QuantizationConfig.model_validate(qc))
    data = {s: sd[f"{name}.{s}"] for s in ("weight_packed", "weight_scale", "weight_zero_point", "weight_shape", "weight_g_idx")
            if f"{name}.{s}" in sd}
    return pqc.decompress_weight(data, quantization_args=args)


def main(argv):
    awq = os.path.abspath(argv[1] if len(argv) > 1 else os.path.join(ROOT, "build", "check", "awq"))
    targets = [("autoawq-gemm", []), ("gptq", ["--gptq-format", "v1"]), ("compressed-tensors", [])]
    ok = bad = refused = 0
    tmp = tempfile.mkdtemp(prefix="awq-verify-")
    try:
        for case in sorted(os.listdir(GOLDEN)):
            meta_path = os.path.join(GOLDEN, case, "meta.json")
            if not os.path.exists(meta_path):
                continue
            meta = json.load(open(meta_path))
            if meta["format"] not in INTEGER_FORMATS or case == "gptq-v1-zero0":
                continue
            src = os.path.join(GOLDEN, case, meta.get("model_dir", "model"))
            expected = load_file(os.path.join(GOLDEN, case, "expected.safetensors"))
            for to, extra in targets:
                out = os.path.join(tmp, f"{case}--{to}")
                r = subprocess.run([awq, "convert", src, "-o", out, "--to", to, "-q", *extra], capture_output=True, text=True)
                if r.returncode != 0:
                    refused += 1
                    print(f"refused  {case:24} -> {to:20} {r.stderr.strip()[:150]}")
                    continue
                sd = load_file(os.path.join(out, "model.safetensors"))
                cfg = json.load(open(os.path.join(out, "config.json")))
                mismatched = []
                for key, want in expected.items():
                    name = key[: -len(".weight")]
                    got = dequant(out, to, name, sd, cfg).to(want.dtype)
                    if got.shape != want.shape or not torch.equal(got.view(torch.int16), want.view(torch.int16)):
                        mismatched.append(name)
                if mismatched:
                    bad += 1
                    print(f"MISMATCH {case:24} -> {to:20} {mismatched}")
                else:
                    ok += 1
                    print(f"ok       {case:24} -> {to:20} {len(expected)} modules bit-exact with the peer's dequantization")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{ok} conversions bit-exact, {bad} mismatched, {refused} refused (with reasons)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
