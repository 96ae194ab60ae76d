#!/usr/bin/env python3
"""Regenerates the non-AutoAWQ golden checkpoints under tests/data/golden/ (seeded).

Run from the repository root, in a venv built from tools/requirements-golden.txt (CPU only):

    python tools/make_golden_others.py            # all cases
    python tools/make_golden_others.py ct-sym-g128 gptq-v1-zero0   # a subset

Formats and which peer code writes / dequantizes them (imported, never copied):
  * compressed-tensors pack-quantized: compressed_tensors (0.13.0) apply_quantization_config,
    calculate_qparams (the min/max observer step of llm-compressor is a plain amin/amax here),
    ModelCompressor.compress_model + update_config, transformers save_pretrained.
    Dense expected = PackedQuantizationCompressor.decompress_weight (peer), asserted equal to
    tools/refdecode.py dequant_ct_pack_quantized.
  * GPTQ: auto_gptq (0.7.1) GPTQ.fasterquant + Quantizer (real GPTQ on random calibration
    inputs), pack_model (QuantLinear.pack), BaseGPTQForCausalLM.save_quantized.
    Dense expected = the peer QuantLinear torch forward on an identity input (= its own
    dequant), asserted equal to refdecode.dequant_gptq.
  * ModelOpt W4A16_AWQ HF export: modelopt (0.47.0) quant_utils.pack_int4_in_uint8 +
    convert_hf_quant_config_format; amax/scale computed as get_scaling_factor does
    (amax.float()/7); file layout written from docs/formats.md §9 (the full mtq.quantize +
    export_hf_checkpoint flow is not run).  Expected from refdecode (no peer dequant exists).
  * TensorRT-LLM <= 0.7 NGC/AMMO npz: written from docs/formats.md §10; expected from
    refdecode.dequant_trtllm_npz which re-executes the arithmetic of TRT-LLM 0.7
    examples/llama/weight.py load_from_awq_llama (tensorrt_llm 0.7.1 is not installable:
    PyPI only has a 6.9 kB placeholder sdist).
"""
from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import sys
import types
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

# --- import shims (documented in each case's meta notes) ------------------------------
# compressed-tensors 0.13.0 imports transformers.masking_utils (transformers >= 4.53) in its
# attention-hook module, which is never used for weight compression.  The venv pins
# transformers 4.51.3 (AutoAWQ needs it), so register an inert stand-in.
if "transformers.masking_utils" not in sys.modules:
    try:
        import transformers.masking_utils  # noqa: F401
    except ImportError:
        _mu = types.ModuleType("transformers.masking_utils")

        class _Registry(dict):
            def register(self, k, v):
                self[k] = v

        _mu.ALL_MASK_ATTENTION_FUNCTIONS = _Registry()
        sys.modules["transformers.masking_utils"] = _mu
# auto_gptq imports `datasets` for calibration helpers we never use.
if "datasets" not in sys.modules:
    try:
        import datasets  # noqa: F401
    except ImportError:
        _d = types.ModuleType("datasets")
        _d.__spec__ = importlib.machinery.ModuleSpec("datasets", None)
        _d.load_dataset = None
        _d.Dataset = _d.DatasetDict = _d.IterableDataset = _d.IterableDatasetDict = object
        sys.modules["datasets"] = _d

import compressed_tensors  # noqa: E402
from compressed_tensors.compressors import ModelCompressor  # noqa: E402
from compressed_tensors.compressors.quantized_compressors.pack_quantized import (  # noqa: E402
    PackedQuantizationCompressor, unpack_from_int32,
)
from compressed_tensors.quantization import (  # noqa: E402
    QuantizationArgs, QuantizationConfig, QuantizationScheme, apply_quantization_config,
    preset_name_to_scheme,
)
from compressed_tensors.quantization.lifecycle.forward import dequantize as ct_dequantize  # noqa: E402
from compressed_tensors.quantization.utils import calculate_qparams  # noqa: E402

import auto_gptq  # noqa: E402
from auto_gptq.modeling._base import BaseQuantizeConfig  # noqa: E402
from auto_gptq.modeling._utils import pack_model  # noqa: E402
from auto_gptq.modeling.llama import LlamaGPTQForCausalLM  # noqa: E402
from auto_gptq.nn_modules.qlinear import qlinear_cuda, qlinear_cuda_old  # noqa: E402
from auto_gptq.quantization.gptq import GPTQ  # noqa: E402

import modelopt  # noqa: E402
from modelopt.torch.export.convert_hf_config import convert_hf_quant_config_format  # noqa: E402
from modelopt.torch.export.quant_utils import pack_int4_in_uint8  # noqa: E402

from safetensors.torch import load_file, save_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import refdecode  # noqa: E402

ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")

V_CT = compressed_tensors.__version__
V_GPTQ = auto_gptq.__version__
V_MO = modelopt.__version__
DT_NAME = {torch.float16: "f16", torch.bfloat16: "bf16"}


# ----------------------------------------------------------------------------- helpers

def tiny_llama(seed: int, dtype, hidden=128, inter=256, vocab=32, heads=4, kv_heads=1):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
                      num_hidden_layers=1, num_attention_heads=heads,
                      num_key_value_heads=kv_heads, max_position_embeddings=64,
                      tie_word_embeddings=False, torch_dtype=str(dtype).split(".")[-1])
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for _, mod in model.named_modules():
            if isinstance(mod, torch.nn.Linear):
                n, k = mod.weight.shape
                rs = 0.02 * (1 + 4 * torch.rand(n, 1))          # per-row spread
                cs = 1 + 2 * (torch.rand(1, k) < 0.05)          # a few outlier columns
                mod.weight.copy_(torch.randn(n, k) * rs * cs + 0.01 * torch.randn(n, 1))
    return model.to(dtype).eval()


def quant_linears(model):
    return {n: m for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and ".layers." in n}


def fresh_dir(case):
    d = os.path.join(GOLDEN, case)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(os.path.join(d, "model"))
    return d


def write_expected(d, expected: dict, meta: dict):
    save_file({k: v.contiguous() for k, v in sorted(expected.items())},
              os.path.join(d, "expected.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")


def to_np_bits(t: torch.Tensor) -> np.ndarray:
    """torch f16/bf16 -> numpy array as refdecode represents it (bf16 = raw uint16)."""
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(np.uint16)
    return t.contiguous().numpy()


def assert_bits_equal(name, a: np.ndarray, b: np.ndarray):
    assert a.shape == b.shape, (name, a.shape, b.shape)
    ai = a.view(np.uint16) if a.itemsize == 2 else a
    bi = b.view(np.uint16) if b.itemsize == 2 else b
    bad = int(np.count_nonzero(ai != bi))
    assert bad == 0, f"{name}: {bad} elements differ"


def check_with_refdecode(d, expected):
    """Decode the written checkpoint independently (refdecode) and compare bit-exactly."""
    dec = refdecode.decode_case_dir(d)
    assert sorted(dec) == sorted(expected), (sorted(dec), sorted(expected))
    for k, v in expected.items():
        assert_bits_equal(k, dec[k], to_np_bits(v))


def stabilize_st_metadata(path):
    """The Rust safetensors writer emits __metadata__ keys in HashMap (random) order; rewrite the
    header with the keys sorted so regeneration is byte-stable.  Same header length, same tensors,
    same data bytes."""
    with open(path, "rb") as f:
        buf = f.read()
    n = int.from_bytes(buf[:8], "little")
    hdr = json.loads(buf[8:8 + n])
    if "__metadata__" in hdr:
        hdr["__metadata__"] = dict(sorted(hdr["__metadata__"].items()))
    text = json.dumps(hdr, separators=(",", ":")).encode()
    assert len(text) <= n
    with open(path, "wb") as f:
        f.write(buf[:8] + text + b" " * (n - len(text)) + buf[8 + n:])


def cleanup_model_dir(md):
    # keep only what the peer would ship and the C++ side needs
    for fn in os.listdir(md):
        if fn == "generation_config.json":
            os.remove(os.path.join(md, fn))
        elif fn.endswith(".safetensors"):
            stabilize_st_metadata(os.path.join(md, fn))


# ----------------------------------------------------------------------------- compressed-tensors

def make_ct(case, seed, dtype, scheme: QuantizationScheme, *, hidden=128, inter=256,
            heads=4, kv_heads=1, int8_zp=False, extra_notes=""):
    d = fresh_dir(case)
    md = os.path.join(d, "model")
    model = tiny_llama(seed, dtype, hidden=hidden, inter=inter, heads=heads, kv_heads=kv_heads)
    qcfg = QuantizationConfig(config_groups={"group_0": scheme}, ignore=["lm_head"])
    apply_quantization_config(model, qcfg)
    args = scheme.weights
    lins = quant_linears(model)
    with torch.no_grad():
        for name, mod in lins.items():
            w = mod.weight
            n, k = w.shape
            if args.strategy == "group":
                g = args.group_size
                assert k % g == 0
                wg = w.reshape(n, k // g, g)
                mn, mx = wg.amin(-1), wg.amax(-1)
            else:  # channel
                mn, mx = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
            scale, zp = calculate_qparams(mn, mx, args)
            mod.weight_scale.data.copy_(scale)
            if hasattr(mod, "weight_zero_point"):
                mod.weight_zero_point.data.copy_(zp)
    comp = ModelCompressor.from_pretrained_model(model, quantization_format="pack-quantized")
    comp.compress_model(model)
    model.save_pretrained(md)
    comp.update_config(md)
    cleanup_model_dir(md)

    sd = load_file(os.path.join(md, "model.safetensors"))
    if int8_zp:
        # pre-0.9.4 layout: unpacked int8 weight_zero_point [N, K/G].  compressed-tensors
        # >= 0.9.4 can only write the packed form, so re-express the same zp values.
        for name in lins:
            key = name + ".weight_zero_point"
            n = int(sd[name + ".weight_shape"][0])
            ng = sd[name + ".weight_scale"].shape[1]
            sd[key] = unpack_from_int32(sd[key], 4, torch.Size((n, ng)), packed_dim=0).to(torch.int8)
        save_file(sd, os.path.join(md, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(md, "config.json")) as f:
            cfg = json.load(f)
        cfg["quantization_config"]["version"] = "0.9.3"
        with open(os.path.join(md, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)

    # peer dequant
    pqc = PackedQuantizationCompressor(config=comp.quantization_config)
    expected = {}
    for name in lins:
        data = {s: sd[f"{name}.{s}"] for s in
                ("weight_packed", "weight_scale", "weight_zero_point", "weight_shape")
                if f"{name}.{s}" in sd}
        if int8_zp:
            # the old decompressor fed the int8 zero points straight into dequantize()
            n, k = [int(x) for x in data["weight_shape"]]
            q = unpack_from_int32(data["weight_packed"], 4, torch.Size((n, k)))
            w = ct_dequantize(x_q=q, scale=data["weight_scale"], zero_point=data["weight_zero_point"])
        else:
            w = pqc.decompress_weight(data, quantization_args=args)
        assert w.dtype == dtype, (w.dtype, dtype)
        expected[name + ".weight"] = w
    zero_point = not args.symmetric
    meta = {
        "format": "compressed-tensors", "bits": 4,
        "group_size": args.group_size if args.strategy == "group" else -1,
        "zero_point": zero_point, "quantized_layers": sorted(lins),
        "expected_dtype": DT_NAME[dtype],
        "source": (f"compressed_tensors {V_CT}: apply_quantization_config + calculate_qparams "
                   f"(min/max over each group, as llm-compressor's minmax observer) + "
                   f"ModelCompressor.compress_model/update_config; transformers "
                   f"{transformers.__version__} save_pretrained; expected = "
                   + ("compressed_tensors dequantize() on the int8 zero points (pre-0.9.4 decompress path)"
                      if int8_zp else "PackedQuantizationCompressor.decompress_weight")),
        "notes": ("Dense = RNE_dtype(s*(q-zp)) with q,zp signed int4 (nibbles are offset-binary u=q+8). "
                  "Asserted bit-identical to tools/refdecode.py dequant_ct_pack_quantized. "
                  "compressed-tensors 0.13.0 was imported with an inert stand-in for "
                  "transformers.masking_utils (only used by its attention hooks; venv has "
                  "transformers 4.51.3). " + extra_notes),
    }
    write_expected(d, expected, meta)
    check_with_refdecode(d, expected)
    return d


def ct_cases():
    out = []
    out.append(make_ct("ct-sym-g128", 101, torch.bfloat16, preset_name_to_scheme("W4A16", ["Linear"]),
                       extra_notes="W4A16 preset (symmetric, group 128, no weight_zero_point), bf16 model."))
    out.append(make_ct("ct-asym-g128", 102, torch.float16, preset_name_to_scheme("W4A16_ASYM", ["Linear"]),
                       extra_notes="W4A16_ASYM preset: packed I32 weight_zero_point [ceil(N/8), K/G] (packed along N)."))
    sch = QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(
        num_bits=4, type="int", symmetric=False, strategy="group", group_size=64))
    out.append(make_ct("ct-asym-int8zp-g64", 103, torch.float16, sch, inter=128, int8_zp=True,
                       extra_notes="Pre-0.9.4 layout: weight_zero_point is unpacked I8 [N, K/G]. "
                       "Written by compressed-tensors 0.13.0 (which can only pack zero points), then the "
                       "packed zero points were unpacked with its own unpack_from_int32 and stored as "
                       "int8; config version field set to \"0.9.3\" to mark the old layout."))
    sch = QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(
        num_bits=4, type="int", symmetric=True, strategy="channel"))
    out.append(make_ct("ct-channel", 104, torch.float16, sch, inter=128,
                       extra_notes="strategy channel, symmetric: weight_scale [N, 1]; meta group_size -1."))
    sch = QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(
        num_bits=4, type="int", symmetric=False, strategy="group", group_size=20))
    out.append(make_ct("ct-asym-k100-g20", 105, torch.float16, sch, hidden=100, inter=60,
                       heads=4, kv_heads=1,
                       extra_notes="K not a multiple of 8 (hidden 100, intermediate 60): weight_packed "
                       "[N, ceil(K/8)] with zero padding nibbles (u=0 in padding, i.e. raw 0 bits); "
                       "k/v_proj have N=25 so packed weight_zero_point is [ceil(25/8)=4, K/G]. "
                       "group_size 20 divides both K values."))
    return out


# ----------------------------------------------------------------------------- GPTQ

def _peer_gptq_dequant(qlinear_cls, sd, name, G, K, N):
    ql = qlinear_cls(bits=4, group_size=G, infeatures=K, outfeatures=N, bias=False)
    ql.qweight.copy_(sd[name + ".qweight"])
    ql.qzeros.copy_(sd[name + ".qzeros"])
    ql.scales.copy_(sd[name + ".scales"])
    ql.g_idx.copy_(sd[name + ".g_idx"])
    ql.eval()
    with torch.no_grad():
        out = ql(torch.eye(K, dtype=torch.float16))     # = W^T exactly
    return out.T.contiguous()


def make_gptq(case, seed, G, sym, desc_act, *, inter=256, v2=False, zero0=False, extra_notes=""):
    d = fresh_dir(case)
    md = os.path.join(d, "model")
    model = tiny_llama(seed, torch.float16, inter=inter)
    lins = quant_linears(model)
    if zero0:
        with torch.no_grad():
            w = lins["model.layers.0.mlp.up_proj"].weight
            # output channel 13, group 0 and channel 2, group 1: all weights >= 0 -> zero point 0
            w[13, :G] = w[13, :G].abs() + 0.05
            w[2, G:2 * G] = w[2, G:2 * G].abs() + 0.05
    qc = BaseQuantizeConfig(bits=4, group_size=G, desc_act=desc_act, sym=sym, damp_percent=0.01,
                            static_groups=False, true_sequential=True, model_file_base_name="model")
    wrapper = LlamaGPTQForCausalLM(model, False, qc)
    quantizers = {}
    gen = torch.Generator().manual_seed(seed + 1000)
    sync = torch.cuda.synchronize
    torch.cuda.synchronize = lambda *a, **k: None      # fasterquant calls it; CPU-only here
    try:
        for name, lin in lins.items():
            k = lin.in_features
            colscale = torch.exp(torch.randn(k, generator=gen))
            x = torch.randn(128, k, generator=gen) * colscale
            g = GPTQ(lin)
            g.quantizer.configure(4, perchannel=True, sym=sym, mse=False)
            g.add_batch(x, None)
            scale, zero, g_idx = g.fasterquant(blocksize=128, percdamp=0.01, group_size=G,
                                               actorder=desc_act, static_groups=False)
            quantizers[name] = (g.quantizer, scale, zero, g_idx)
            if zero0:
                print(f"  {name}: zero points == 0: {int((zero == 0).sum())}")
    finally:
        torch.cuda.synchronize = sync
    pack_model(model, quantizers, bits=4, group_size=G, use_triton=False, desc_act=desc_act,
               force_layer_back_to_cpu=True)
    wrapper._quantized = True
    wrapper.save_quantized(md, use_safetensors=True)
    cleanup_model_dir(md)

    sd = load_file(os.path.join(md, "model.safetensors"))
    # the QuantLinear class AutoGPTQ itself selects for loading on the torch path
    # (auto_gptq.utils.import_utils.dynamically_import_QuantLinear, exllama disabled):
    reader = qlinear_cuda_old.QuantLinear if not desc_act else qlinear_cuda.QuantLinear
    expected = {}
    alt_diff = {}
    for name, lin in lins.items():
        N, K = lin.out_features, lin.in_features
        w = _peer_gptq_dequant(reader, sd, name, G, K, N)
        expected[name + ".weight"] = w
        if zero0:
            other = _peer_gptq_dequant(qlinear_cuda.QuantLinear, sd, name, G, K, N)
            alt_diff[name] = int((other.view(torch.int16) != w.view(torch.int16)).sum())
    if not desc_act:
        for name in lins:   # g_idx must be k // G here
            assert torch.equal(sd[name + ".g_idx"].long(), torch.arange(lins[name].in_features) // G)
    else:
        nontriv = sum(not torch.equal(sd[n + ".g_idx"].long(), torch.arange(lins[n].in_features) // G)
                      for n in lins)
        assert nontriv == len(lins), nontriv

    fmt = "v1"
    if v2:
        # GPTQModel's on-disk gptq_v2 = v1 qzeros + 0x11111111 per int32 word (4-bit), i.e.
        # GPTQModel.utils.model.convert_gptq_v1_to_v2_format_module.  GPTQModel itself cannot be
        # installed next to torch 2.6 (7.7.0 requires torch>=2.14.1), so the same word add is done
        # here and checked nibble-wise (no zero point 0 -> no carries).
        fmt = "v2"
        for name in lins:
            qz = sd[name + ".qzeros"].numpy().astype(np.int64) & 0xFFFFFFFF
            nib = (qz[..., None] >> (4 * np.arange(8))) & 0xF
            assert (nib != 0xF).all(), "v1 nibble 0xF (zero point 0) would carry"
            sd[name + ".qzeros"] = torch.from_numpy(((qz + 0x11111111) & 0xFFFFFFFF).astype(np.uint32).view(np.int32))
        st_meta = {"format": "pt"}
        with open(os.path.join(md, "model.safetensors"), "rb") as f:
            hdr = json.loads(f.read(int.from_bytes(f.read(8), "little")))
            st_meta = hdr.get("__metadata__", st_meta)
        save_file(sd, os.path.join(md, "model.safetensors"), metadata=st_meta)
        stabilize_st_metadata(os.path.join(md, "model.safetensors"))
        for fn in ("config.json", "quantize_config.json"):
            p = os.path.join(md, fn)
            with open(p) as f:
                c = json.load(f)
            tgt = c["quantization_config"] if fn == "config.json" else c
            tgt["checkpoint_format"] = "gptq_v2"
            with open(p, "w") as f:
                json.dump(c, f, indent=2)
    notes = ("Real GPTQ (auto_gptq GPTQ.fasterquant, damp 0.01, blocksize 128) on seeded random "
             "calibration inputs (128 rows, per-column log-normal scale), packed by pack_model "
             f"({'qlinear_cuda' if desc_act else 'qlinear_cuda_old'}.QuantLinear.pack) and saved by "
             "save_quantized (quantize_config.json + config.json quantization_config; AutoGPTQ 0.7.1 writes no "
             "checkpoint_format key => v1 'gptq'). Dense = RNE_f16(s[g_idx[k]]*(q-z)), z = stored+1 (v1) or "
             "stored (v2). Expected = the peer QuantLinear torch forward on an identity input. "
             "torch.cuda.synchronize was stubbed (fasterquant calls it; CPU only). ")
    if zero0:
        notes += ("Zero-point-0 case: up_proj channels 13 (group 0) and 2 (group 1) are all >= 0 so GPTQ's "
                  "asymmetric quantizer gives z=0; pack() stores z-1 = -1 -> numpy uint32 0xFFFFFFFF OR'd "
                  "into the word, which sets every higher nibble of that qzeros word to 0xF. Expected uses "
                  "AutoGPTQ's qlinear_cuda_old torch path (the class AutoGPTQ loads for desc_act=False), which "
                  "computes z = (nibble+1) & 0xF, so nibble 0xF -> z=0 (correct for the true zero, 0 for the "
                  "corrupted neighbours). AutoGPTQ's qlinear_cuda torch path masks BEFORE the +1 "
                  "(z = (nibble&0xF)+1 -> 16); it differs from expected in these many elements per module: "
                  + json.dumps(alt_diff) + ". ExLlama/vLLM use nibble+1 unmasked (=16) like qlinear_cuda. ")
    if v2:
        notes += ("checkpoint_format gptq_v2 (config.json quantization_config and quantize_config.json): qzeros = "
                  "AutoGPTQ v1 words + 0x11111111 (GPTQModel convert_gptq_v1_to_v2_format_module arithmetic, "
                  "re-done here because GPTQModel needs torch>=2.14.1). Expected = the v1 peer dequant before "
                  "conversion (identical dense weights). ")
    meta = {
        "format": "gptq", "bits": 4, "group_size": G, "zero_point": not sym,
        "gptq_format": fmt, "quantized_layers": sorted(lins), "expected_dtype": "f16",
        "source": f"auto_gptq {V_GPTQ}: GPTQ.fasterquant, pack_model/QuantLinear.pack, save_quantized, "
                  f"QuantLinear.forward (torch path) for expected",
        "notes": notes + extra_notes + "Asserted bit-identical to tools/refdecode.py dequant_gptq "
                 "(zero_mode='v1_mask_after' for v1, 'v2' for v2).",
    }
    if zero0:
        meta["zero_convention"] = "autogptq_cuda_old: z = ((stored nibble) + 1) & 0xF"
    write_expected(d, expected, meta)
    check_with_refdecode(d, expected)
    return d


def gptq_cases():
    return [
        make_gptq("gptq-v1-sym-g128", 201, 128, True, False),
        make_gptq("gptq-v1-asym-g64", 202, 64, False, False, inter=128),
        make_gptq("gptq-v2-asym-g64", 203, 64, False, False, inter=128, v2=True),
        make_gptq("gptq-actorder-g64", 204, 64, False, True, inter=128,
                  extra_notes="desc_act=true, static_groups=false: g_idx[k] = (position of k in the Hessian-"
                              "diagonal permutation)//G, not k//G (asserted for every module). "),
        make_gptq("gptq-v1-zero0", 205, 64, False, False, inter=128, zero0=True),
    ]


# ----------------------------------------------------------------------------- ModelOpt

def make_modelopt(case, seed, G=128):
    d = fresh_dir(case)
    md = os.path.join(d, "model")
    model = tiny_llama(seed, torch.float16)
    lins = quant_linears(model)
    gen = torch.Generator().manual_seed(seed + 1000)
    sd = {}
    expected = {}
    for name, t in model.state_dict().items():
        mod = name[: -len(".weight")] if name.endswith(".weight") else None
        if mod in lins:
            continue
        sd[name] = t.clone()
    for name, lin in lins.items():
        w = lin.weight.detach()                         # f16 [N, K]
        N, K = w.shape
        has_pqs = name.endswith("o_proj") or name.endswith("down_proj")
        if has_pqs:
            # AWQ smoothing: runtime y = (x * pqs) @ W'^T, so the stored W' = W / pqs
            pqs = (2.0 ** (torch.rand(K, generator=gen) * 2 - 1)).to(torch.float16)
            w = (w.float() / pqs.float()).to(torch.float16)
        amax = w.float().reshape(N, K // G, G).abs().amax(-1)   # weight_quantizer amax (block)
        sf = amax.float() / 7                                     # get_scaling_factor: amax.float()/maxbound
        packed = pack_int4_in_uint8(w, sf, G)                    # peer packer
        assert packed.dtype == torch.uint8 and packed.shape == (N // 2, K)
        sd[name + ".weight"] = packed
        sd[name + ".weight_scale"] = sf
        if has_pqs:
            sd[name + ".pre_quant_scale"] = pqs
    save_file(sd, os.path.join(md, "model.safetensors"), metadata={"format": "pt"})
    hf_quant = {"producer": {"name": "modelopt", "version": V_MO},
                "quantization": {"quant_algo": "W4A16_AWQ", "kv_cache_quant_algo": None,
                                 "group_size": G, "has_zero_point": False, "pre_quant_scale": True,
                                 "exclude_modules": ["lm_head"]}}
    with open(os.path.join(md, "hf_quant_config.json"), "w") as f:
        json.dump(hf_quant, f, indent=4)
    model.config.quantization_config = convert_hf_quant_config_format(hf_quant)
    model.config.save_pretrained(md)
    expected = {}
    for name, lin in lins.items():
        # no peer dequant exists -> refdecode, whose unpacking is first checked against the packer
        q = refdecode.unpack_modelopt_int4(sd[name + ".weight"].numpy())
        qt = (lin.weight.detach().float() if name + ".pre_quant_scale" not in sd else None)
        w = sd[name + ".weight"]
        N2, K = w.shape
        sf = sd[name + ".weight_scale"]
        src = (lin.weight.detach().float() if qt is not None else
               (lin.weight.detach().float() / sd[name + ".pre_quant_scale"].float()).half().float())
        qref = (src / sf[:, torch.arange(K) // G]).round().clamp(-8, 7).to(torch.int8)
        assert np.array_equal(q, qref.numpy()), name
        pqs = sd.get(name + ".pre_quant_scale")
        expected[name + ".weight"] = torch.from_numpy(refdecode.dequant_modelopt_w4a16(
            sd[name + ".weight"].numpy(), sf.numpy(), None if pqs is None else pqs.numpy(),
            G, np.float16))
    meta = {
        "format": "modelopt", "bits": 4, "group_size": G, "zero_point": False,
        "quantized_layers": sorted(lins), "expected_dtype": "f16",
        "source": f"modelopt {V_MO}: modelopt.torch.export.quant_utils.pack_int4_in_uint8 and "
                  f"convert_hf_config.convert_hf_quant_config_format; tensors named/laid out per "
                  f"docs/formats.md §9 (HF unified export)",
        "notes": ("Not produced by mtq.quantize + export_hf_checkpoint (no calibration run): RTN with "
                  "block amax, weight_scale = amax.float()/7 (F32 [N, K/G]) as get_scaling_factor, packed "
                  "by the peer's pack_int4_in_uint8 (U8 [N/2, K], low nibble = row 2p). pre_quant_scale "
                  "(F16 [K]) only on o_proj/down_proj (q/k/v/gate/up's are assumed folded into the norms); "
                  "their stored weights are the smoothed W/pqs. Dense expected = "
                  "RNE_f16( f32(f32(q*s) * f32(pqs[k])) ) (pqs folded; q*s exact in f32, then one f32 "
                  "multiply, then one rounding to torch_dtype f16); without pqs RNE_f16(q*s). ModelOpt has "
                  "no dequant function, so expected comes from tools/refdecode.py dequant_modelopt_w4a16; "
                  "its int4 unpacking is asserted to invert pack_int4_in_uint8 exactly."),
    }
    write_expected(d, expected, meta)
    check_with_refdecode(d, expected)
    return d


# ----------------------------------------------------------------------------- TRT-LLM npz

def make_trtllm_npz(case, seed, compressed: bool, G=128, inter=256):
    d = fresh_dir(case)
    md = os.path.join(d, "model")
    hidden, vocab, heads, kv_heads = 128, 32, 4, 1
    model = tiny_llama(seed, torch.float16, hidden=hidden, inter=inter, heads=heads, kv_heads=kv_heads)
    sd = model.state_dict()
    rng = np.random.default_rng(seed)
    arrays = {}

    def nice_weight(w: np.ndarray) -> np.ndarray:
        """Adjust w so that each group's amax = 7*2^-e exactly (amax/7*7 is then exact and the
        q/k/v recomputed amax equals the file's one)."""
        w = w.astype(np.float32).copy()
        N, K = w.shape
        g = w.reshape(N, K // G, G)
        amax = np.abs(g).max(-1)
        e = np.ceil(np.log2(amax / 7.0))
        target = (7.0 * 2.0 ** e).astype(np.float32)
        idx = np.abs(g).argmax(-1)
        sgn = np.sign(np.take_along_axis(g, idx[..., None], -1))
        np.put_along_axis(g, idx[..., None], sgn * target[..., None], -1)
        return g.reshape(N, K).astype(np.float16)

    def lin(prefix, w16: torch.Tensor, pqs16: np.ndarray):
        w = nice_weight(w16.float().numpy())
        N, K = w.shape
        amax = np.abs(w.astype(np.float32)).reshape(N, K // G, G).max(-1)
        arrays[f"_np:{prefix}:weight"] = w
        arrays[f"_np:{prefix}:weights_scaling_factor"] = (amax / np.float32(7)).astype(np.float32)
        arrays[f"_np:{prefix}:prequant_scaling_factor"] = pqs16

    def pqs(K):
        # few mantissa bits so (p+p+p)/3 == p exactly (TRT-LLM averages q/k/v pqs)
        return (np.round(rng.uniform(0.5, 2.0, K) * 16) / 16).astype(np.float16)

    arrays["_np:vocab_embedding:weight"] = sd["model.embed_tokens.weight"].numpy()
    arrays["_np:lm_head:weight"] = sd["lm_head.weight"].numpy()
    arrays["_np:final_layernorm:weight"] = sd["model.norm.weight"].numpy()
    p = "model.layers.0."
    qkv_p = pqs(hidden)
    for t, hf in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj")):
        lin(f"layers:0:attention:qkv:{t}", sd[p + f"self_attn.{hf}.weight"], qkv_p)
    lin("layers:0:attention:dense", sd[p + "self_attn.o_proj.weight"], pqs(hidden))
    lin("layers:0:mlp:fc", sd[p + "mlp.gate_proj.weight"], pqs(hidden))
    lin("layers:0:mlp:gate", sd[p + "mlp.up_proj.weight"], pqs(hidden))
    lin("layers:0:mlp:proj", sd[p + "mlp.down_proj.weight"], pqs(inter))
    arrays["_np:layers:0:input_layernorm:weight"] = sd[p + "input_layernorm.weight"].numpy()
    arrays["_np:layers:0:post_layernorm:weight"] = sd[p + "post_attention_layernorm.weight"].numpy()

    npz = os.path.join(md, "llama_tp1_rank0.npz")
    (np.savez_compressed if compressed else np.savez)(npz, **arrays)

    def ref(prefix):
        return {s: f"_np:{prefix}:{s}" for s in ("weight", "weights_scaling_factor", "prequant_scaling_factor")}

    layer = {
        "decoder_type": "llama", "num_attention_heads": heads, "num_kv_heads": kv_heads,
        "max_position_embeddings": 64, "rotary_pct": 1.0, "use_alibi": False,
        "new_decoder_architecture": False, "parallel_attention": False,
        "input_layernorm": {"weight": "_np:layers:0:input_layernorm:weight", "bias": None,
                            "layernorm_type": "rms", "eps": 1e-06},
        "attention": {"qkv": {"q": ref("layers:0:attention:qkv:q"), "k": ref("layers:0:attention:qkv:k"),
                              "v": ref("layers:0:attention:qkv:v")},
                      "dense": ref("layers:0:attention:dense"), "rotary_dim": -1},
        "post_layernorm": {"weight": "_np:layers:0:post_layernorm:weight", "bias": None,
                           "layernorm_type": "rms", "eps": 1e-06},
        "mlp": {"fc": ref("layers:0:mlp:fc"), "gate": ref("layers:0:mlp:gate"),
                "proj": ref("layers:0:mlp:proj"), "hidden_act": "silu"},
    }
    cfg = {"version": 0.4, "quantization": "int4_awq", "awq_block_size": G, "dtype": "float16",
           "vocab_size": vocab, "rank": 0, "tensor_parallel": 1,
           "vocab_embedding": {"weight": "_np:vocab_embedding:weight"},
           "positional_embedding": None,
           "layers": [layer],
           "final_layernorm": {"weight": "_np:final_layernorm:weight", "bias": None,
                               "layernorm_type": "rms", "eps": 1e-06},
           "lm_head": {"weight": "_np:lm_head:weight"}}
    with open(os.path.join(md, "llama_tp1.json"), "w") as f:
        json.dump(cfg, f, indent=4)

    loaded = dict(np.load(npz))
    expected = {}
    qnames = []
    for key in sorted(loaded):
        if key.endswith(":weights_scaling_factor"):
            pre = key[: -len(":weights_scaling_factor")]
            mod = pre[len("_np:"):].replace(":", ".")
            qnames.append(mod)
            expected[mod + ".weight"] = torch.from_numpy(refdecode.dequant_trtllm_npz_module(
                loaded, pre, qkv=":attention:qkv:" in pre))
            # the two loader paths (file scale*7 vs q/k/v amax recomputation) agree by construction
            if ":attention:qkv:" in pre:
                a = refdecode.dequant_trtllm_npz_module(loaded, pre, qkv=False)
                b = refdecode.dequant_trtllm_npz_module(loaded, pre, qkv=True)
                assert np.array_equal(a.view(np.uint16), b.view(np.uint16)), pre
    meta = {
        "format": "trtllm-npz", "bits": 4, "group_size": G, "zero_point": False,
        "quantized_layers": sorted(qnames), "expected_dtype": "f16",
        "source": "written from docs/formats.md §10 (numpy " + np.__version__ + (" savez_compressed" if compressed else " savez")
                  + "); expected = tools/refdecode.py dequant_trtllm_npz_module, a re-execution of TRT-LLM 0.7 "
                  "examples/llama/weight.py load_from_awq_llama (read from the code index; tensorrt_llm 0.7.1 is "
                  "not installable from PyPI)",
        "notes": (
            "Module names in expected.safetensors = npz key minus the '_np:' prefix and the ':weight' suffix, "
            "':' -> '.', e.g. layers.0.attention.qkv.q (mlp.fc = HF gate_proj, mlp.gate = HF up_proj, mlp.proj = "
            "down_proj, attention.dense = o_proj). npz dtypes: weights F16 [N,K] (unquantized, already smoothed), "
            "weights_scaling_factor F32 [N, K/G] = amax/7, prequant_scaling_factor F16 [K], norms/embeddings F16. "
            "Loader arithmetic (load_from_awq_llama, .npz branch, dtype float16): "
            "dense/fc/gate/proj: amax = wsf*7 (F32, in place), scale = amax/8.0 (F32); weight(F16) /= "
            "scale.repeat_interleave(G) (in-place => computed in F32, rounded to F16); q = clamp(round_half_even("
            "that F16).to(int8), -8, 7); the engine stores weights_scaling_factor = scale.to(F16) and "
            "prequant_scaling_factor = pqs.to(F16). q/k/v: the file's weights_scaling_factor is IGNORED; "
            "reSmooth_and_get_scale recomputes amax = max|w| per group from the F16 weight, scale = amax/8 (F16), "
            "and the three pre_quant_scales are averaged (pq+pk+pv)/3.0 in F16. Dense expected = "
            "RNE_f16( f32( f32(q*scale_f16) * f32(pqs_f16[k]) ) ) (pre_quant_scale folded exactly like modelopt; "
            "for q/k/v pqs = the averaged one). The data is built so both q/k/v interpretations coincide: every "
            "group's amax is exactly 7*2^e (so amax/7*7 == amax in F32 and the recomputed F16 amax matches), and "
            "q/k/v share one pre_quant_scale with <=5 significant bits (so the F16 average is exact). "
            "llama_tp1.json: AMMO ModelConfig-style dict with tensors replaced by '_np:' key strings; its exact "
            "field set (version 0.4, layernorm_type, rotary_pct, ...) is reconstructed from memory of AMMO 0.x / "
            "modelopt split_config_and_weights and is UNCERTAIN; the TRT-LLM 0.7 loader only reads the npz keys. "
            "Zip member kind: " + ("ZIP_DEFLATED (np.savez_compressed)." if compressed else "ZIP_STORED (np.savez).")),
    }
    write_expected(d, expected, meta)
    check_with_refdecode(d, expected)
    return d


# ----------------------------------------------------------------------------- main

CASES = {
    "ct": ct_cases,
    "gptq": gptq_cases,
    "modelopt": lambda: [make_modelopt("modelopt-w4a16-g128", 301)],
    "trtllm": lambda: [make_trtllm_npz("trtllm-npz-g128", 401, False),
                       make_trtllm_npz("trtllm-npz-deflated", 402, True, inter=128)],
}


def main(argv):
    torch.set_num_threads(1)
    groups = argv[1:] or list(CASES)
    for g in groups:
        for d in CASES[g]():
            size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
            print(f"{os.path.relpath(d, ROOT)}: {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
