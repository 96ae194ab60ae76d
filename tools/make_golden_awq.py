#!/usr/bin/env python3
"""Regenerates the AutoAWQ golden checkpoints under tests/data/ (deterministic, seeded).

Run from the repository root, inside a venv built from tools/requirements-golden.txt
(CPU only; AutoAWQ's CUDA extensions are not needed):

    python tools/make_golden_awq.py                # regenerate + verify
    python tools/make_golden_awq.py --verify-only  # only re-check the files on disk

What it does, per case (see tests/data/README.md):
  1. build a tiny random Llama/Qwen2 model with transformers (seeded), cast to fp16
     (AutoAWQ loads models in fp16 by default);
  2. wrap it in AutoAWQ's own model class (awq.models.{llama,qwen2}) and quantize every
     nn.Linear in the decoder blocks with AutoAWQ's own AwqQuantizer._apply_quant
     (= pseudo_quantize_tensor RTN with zero point + WQLinear_<version>.from_linear
     packing).  No activation-aware scale search / clipping is run (no calibration data),
     so the checkpoints are plain RTN-quantized AWQ-format checkpoints;
  3. save with AutoAWQ's own BaseAWQForCausalLM.save_quantized (config.json with
     quantization_config, generation_config.json, model.safetensors via
     huggingface_hub.save_torch_state_dict);
  4. decode every quantized module with tools/refdecode.py (numpy, written from
     docs/formats.md); for GEMM the decoder is first asserted bit-identical to AutoAWQ's
     awq.utils.packing_utils.dequantize_gemm, and the GEMV_fast unpacker is asserted to
     invert AutoAWQ's pack_intweight; then write expected.safetensors + meta.json.

No peer code is copied here: it is imported from the installed autoawq package.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import sys
import types

import numpy as np
import torch

# transformers must be imported before we stub `datasets` (its availability probe
# calls importlib.util.find_spec("datasets")).
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM,
)

# AutoAWQ imports `datasets` only for calibration-data loading (awq/utils/calib_data.py),
# which we never use.  Stub it instead of pulling in pyarrow & co.
if "datasets" not in sys.modules:
    try:
        import datasets  # noqa: F401
    except ImportError:
        _d = types.ModuleType("datasets")
        _d.load_dataset = None
        sys.modules["datasets"] = _d

import warnings  # noqa: E402
warnings.filterwarnings("ignore")

import awq  # noqa: E402
from awq.models._config import AwqConfig  # noqa: E402
from awq.models.llama import LlamaAWQForCausalLM  # noqa: E402
from awq.models.qwen2 import Qwen2AWQForCausalLM  # noqa: E402
from awq.quantize.quantizer import AwqQuantizer  # noqa: E402
from awq.utils.module import get_named_linears, exclude_layers_to_not_quantize  # noqa: E402
from awq.utils.packing_utils import dequantize_gemm  # noqa: E402
from awq.modules.linear.gemv_fast import pack_intweight  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import refdecode  # noqa: E402

REPO = os.path.dirname(HERE)
DATA = os.path.join(REPO, "tests", "data")
GOLDEN = os.path.join(DATA, "golden")

VERSIONS = {
    "awq": awq.__version__,
    "torch": torch.__version__.split("+")[0],
    "transformers": transformers.__version__,
}
FORMAT_OF_VERSION = {"gemm": "autoawq-gemm", "gemv": "autoawq-gemv", "gemv_fast": "autoawq-gemv-fast"}
LINEAR_CLASS = {"gemm": "WQLinear_GEMM", "gemv": "WQLinear_GEMV", "gemv_fast": "WQLinear_GEMVFast"}


# ----------------------------------------------------------------------------
# model construction
# ----------------------------------------------------------------------------

def _seed(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(arch: str, seed: int, **cfg):
    _seed(seed)
    common = dict(max_position_embeddings=256, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2,
                  torch_dtype="float16", use_cache=True)
    common.update(cfg)
    if arch == "llama":
        config = LlamaConfig(**common)
        model = LlamaForCausalLM(config)
    elif arch == "qwen2":
        common.setdefault("use_sliding_window", False)
        config = Qwen2Config(**common)
        model = Qwen2ForCausalLM(config)
    else:
        raise ValueError(arch)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        # HF init leaves norms at 1 and biases at 0; perturb them so a loader that
        # mixes tensors up is caught.
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    model = model.half().eval()   # AutoAWQ from_pretrained default torch_dtype=float16
    model.config.torch_dtype = torch.float16
    return model


def make_awq_model(model, arch):
    cls = {"llama": LlamaAWQForCausalLM, "qwen2": Qwen2AWQForCausalLM}[arch]
    return cls


# ----------------------------------------------------------------------------
# quantization with AutoAWQ's own code
# ----------------------------------------------------------------------------

def quantize_with_autoawq(model, arch, version, group_size, modules_to_not_convert=None):
    """Runs AutoAWQ's AwqQuantizer._apply_quant on every decoder block.

    Returns (awq_model, fakequant) where fakequant maps module name -> the fp16 weight
    AutoAWQ's pseudo_quantize_tensor produced ((q-z)*s computed in fp16 by torch)."""
    awq_cls = make_awq_model(model, arch)
    quant_config = AwqConfig.from_dict({"zero_point": True, "q_group_size": group_size,
                                        "w_bit": 4, "version": version,
                                        "modules_to_not_convert": modules_to_not_convert})
    awq_model = awq_cls(model, arch, False, model.config, quant_config, None)

    # AwqQuantizer.__init__ runs calibration (init_quant); we only need its RTN + packing
    # path, so create the object without __init__ and set the fields _apply_quant uses.
    quantizer = AwqQuantizer.__new__(AwqQuantizer)
    quantizer.w_bit = 4
    quantizer.zero_point = True
    quantizer.version = quant_config.version
    quantizer.modules_to_not_convert = modules_to_not_convert or []

    fakequant = {}
    layers = awq_cls.get_model_layers(model)
    prefix = "model.layers"
    for i, layer in enumerate(layers):
        named = exclude_layers_to_not_quantize(get_named_linears(layer),
                                               quantizer.modules_to_not_convert)
        for lname, lin in named.items():
            K = lin.in_features
            # AutoAWQ 0.2.9 bug: from_linear(group_size=-1) indexes scale_zeros[idx // -1]
            # and raises IndexError, so "per-channel" (-1) is realized as G = K, which is
            # exactly what -1 means (pseudo_quantize with G=K == per-row).
            quantizer.group_size = K if group_size == -1 else group_size
            quantizer._apply_quant(layer, {lname: lin})
            # _apply_quant replaced lin.weight.data (in place on CPU) by the fake-quant weight
            fakequant[f"{prefix}.{i}.{lname}"] = lin.weight.data.clone()
    awq_model.is_quantized = True
    return awq_model, fakequant


# ----------------------------------------------------------------------------
# peer-validation of refdecode
# ----------------------------------------------------------------------------

def check_gemv_fast_unpack_against_peer():
    """refdecode.unpack_gemv_fast_int must invert AutoAWQ's pack_intweight."""
    g = torch.Generator().manual_seed(1234)
    for (n, k) in [(4, 64), (8, 128), (12, 192), (16, 320)]:
        q = torch.randint(0, 16, (n, k), generator=g, dtype=torch.int32)
        packed = pack_intweight(q, interleave=4, kstride=64).numpy()
        assert packed.dtype == np.int16 and packed.shape == (n // 4, k)
        back = refdecode.unpack_gemv_fast_int(packed)
        assert np.array_equal(back, q.numpy().astype(np.uint8)), (n, k)


def peer_dequant_gemm(sd, prefix, group_size):
    qw = torch.from_numpy(sd[prefix + ".qweight"])
    qz = torch.from_numpy(sd[prefix + ".qzeros"])
    sc = torch.from_numpy(sd[prefix + ".scales"])
    K = qw.shape[0]
    G = K if group_size == -1 else group_size
    wt = dequantize_gemm(qw, qz, sc, 4, G)           # [K, N] fp16
    assert wt.dtype == torch.float16
    return wt.t().contiguous().numpy()


# ----------------------------------------------------------------------------
# case writer
# ----------------------------------------------------------------------------

def _dir_size(path):
    return sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(path) for f in fs)


def canonicalize_safetensors_metadata(path):
    """Sorts the keys of the safetensors __metadata__ object in place.

    The Rust writer serializes __metadata__ from a HashMap, so with more than one key
    (tied case: {"format": "pt", "lm_head.weight": "model.embed_tokens.weight"}) the key
    order -- and thus the file bytes -- changes from run to run.  We reorder those keys
    (same header length, same tensors, same data bytes) so regeneration is byte-stable."""
    import collections
    import struct
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    (n,) = struct.unpack("<Q", buf[:8])
    raw = bytes(buf[8:8 + n])
    text = raw.rstrip(b" ").decode("utf-8")
    hdr = json.loads(text, object_pairs_hook=collections.OrderedDict)
    dump = lambda h: json.dumps(h, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert dump(hdr) == text.encode("utf-8"), "unexpected header serialization"
    meta = hdr.get("__metadata__")
    if not meta or len(meta) < 2:
        return
    hdr["__metadata__"] = collections.OrderedDict(sorted(meta.items()))
    new = dump(hdr)
    assert len(new) == len(text.encode("utf-8"))
    buf[8:8 + len(new)] = new
    with open(path, "wb") as f:
        f.write(buf)


def write_case(case, *, arch, version, group_size, seed, model_dir=None, notes="",
               mutate=None, tokenizer=None, **cfg):
    """Builds, quantizes, saves and verifies one golden case."""
    case_dir = os.path.join(GOLDEN, case)
    model_dir = model_dir or os.path.join(case_dir, "model")
    for d in (case_dir, model_dir):
        if os.path.exists(d):
            shutil.rmtree(d)
    os.makedirs(case_dir)

    model = build_model(arch, seed, **cfg)
    if mutate is not None:
        with torch.no_grad():
            mutate(model)
    awq_model, fakequant = quantize_with_autoawq(model, arch, version, group_size)
    awq_model.save_quantized(model_dir)          # AutoAWQ's own save path
    canonicalize_safetensors_metadata(os.path.join(model_dir, "model.safetensors"))
    if tokenizer is not None:
        tokenizer.save_pretrained(model_dir)

    # ---- decode and verify
    with open(os.path.join(model_dir, "config.json")) as f:
        saved_cfg = json.load(f)
    qc = saved_cfg["quantization_config"]
    assert qc == {"quant_method": "awq", "zero_point": True, "group_size": group_size, "bits": 4,
                  "version": version, "modules_to_not_convert": None}, qc
    sd, st_meta = refdecode.read_safetensors(os.path.join(model_dir, "model.safetensors"))
    # huggingface_hub's save_torch_state_dict writes {"format": "pt"} plus, for tied weights, an
    # entry per discarded alias ({"lm_head.weight": "model.embed_tokens.weight"}).
    assert st_meta.get("format") == "pt", st_meta
    fmt = FORMAT_OF_VERSION[version]
    expected = refdecode.decode_checkpoint(model_dir)
    quantized = sorted(k[: -len(".weight")] for k in expected)
    assert quantized == sorted(fakequant), (quantized, sorted(fakequant))

    stats = {"negative_int32_words": 0, "fakequant_mismatch": 0, "elements": 0}
    shapes = {}
    for m in quantized:
        w = expected[m + ".weight"]
        assert w.dtype == np.float16
        shapes[m] = {t: [list(sd[m + "." + t].shape), str(sd[m + "." + t].dtype)]
                     for t in ("qweight", "qzeros", "scales", "bias") if m + "." + t in sd}
        stats["elements"] += w.size
        if version == "gemm":
            peer = peer_dequant_gemm(sd, m, group_size)
            d = refdecode.compare_bits(w, peer)
            assert d == 0, f"{case}/{m}: refdecode != AutoAWQ dequantize_gemm in {d} elements"
        if version in ("gemm", "gemv"):
            stats["negative_int32_words"] += int((sd[m + ".qweight"] < 0).sum() + (sd[m + ".qzeros"] < 0).sum())
        else:
            stats["negative_int32_words"] += int((sd[m + ".qweight"] < 0).sum())  # int16 words here
        # AutoAWQ's fake-quant weight (torch fp16 (q-z)*s) must equal the GEMM/GEMV decode;
        # for GEMV_fast (q*s + sz) it may differ by rounding (FORMATS 2.3) -- counted.
        fq = fakequant[m].numpy()
        d = refdecode.compare_bits(w, fq)
        stats["fakequant_mismatch"] += d
        if version in ("gemm", "gemv"):
            assert d == 0, f"{case}/{m}: decode != AutoAWQ pseudo_quantize_tensor in {d} elements"

    save_file({k: torch.from_numpy(v) for k, v in expected.items()},
              os.path.join(case_dir, "expected.safetensors"), metadata={"format": "pt"})
    # re-read with the independent reader and compare once more
    exp2, _ = refdecode.read_safetensors(os.path.join(case_dir, "expected.safetensors"))
    for k in expected:
        assert refdecode.compare_bits(exp2[k], expected[k]) == 0

    src = (f"autoawq=={VERSIONS['awq']} (torch=={VERSIONS['torch']}, transformers=={VERSIONS['transformers']}, CPU): "
           f"awq.quantize.quantizer.AwqQuantizer._apply_quant -> pseudo_quantize_tensor (RTN, zero_point) + "
           f"awq.modules.linear.{LINEAR_CLASS[version]}.from_linear packing; saved by "
           f"BaseAWQForCausalLM.save_quantized. Expected weights: tools/refdecode.py "
           + ("(asserted bit-identical to awq.utils.packing_utils.dequantize_gemm and to the fp16 fake-quant "
              "weight of pseudo_quantize_tensor)" if version == "gemm" else
              "(asserted bit-identical to the fp16 fake-quant weight of pseudo_quantize_tensor)" if version == "gemv" else
              "(unpacker asserted to invert awq.modules.linear.gemv_fast.pack_intweight; formula RNE(q*s+sz) "
              "of the awq_v2_ext CUDA kernel, which cannot run here)"))
    base_notes = ("Random seeded weights (seed %d), RTN quantization only: no activation-aware scale search and no "
                  "clipping (no calibration data), so this is AutoAWQ's packing/format on plain round-to-nearest "
                  "scales/zeros. Non-quantized tensors (embeddings, norms, lm_head) are fp16. "
                  % seed)
    if version == "gemv_fast":
        base_notes += ("GEMV_fast dequant w = RNE(q*s + sz) differs from AutoAWQ's fp16 fake-quant (q-z)*s "
                       "in %d of %d elements (expected; docs/formats.md §5). "
                       % (stats["fakequant_mismatch"], stats["elements"]))
    meta = {
        "format": fmt,
        "bits": 4,
        "group_size": group_size,
        "zero_point": True,
        "quantized_layers": quantized,
        "expected_dtype": "f16",
        "model_dir": os.path.relpath(model_dir, case_dir),
        "arch": saved_cfg["architectures"][0],
        "tie_word_embeddings": bool(saved_cfg.get("tie_word_embeddings", False)),
        "source": src,
        "notes": base_notes + notes + " Negative int32/int16 packed words in the file: %d."
                 % stats["negative_int32_words"],
        "tensor_shapes": shapes,
    }
    with open(os.path.join(case_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=False)
        f.write("\n")
    print(f"{case:24s} {fmt:18s} G={group_size:4d} layers={len(quantized):2d} "
          f"neg_words={stats['negative_int32_words']:5d} fq_mismatch={stats['fakequant_mismatch']:5d} "
          f"model={_dir_size(model_dir)/1024:.0f}KiB case={_dir_size(case_dir)/1024:.0f}KiB")
    return meta, sd


# ----------------------------------------------------------------------------
# special cases
# ----------------------------------------------------------------------------

CONST_GROUP_NOTES = (
    "layer 0 self_attn.q_proj (G=32) has constant groups: rows 0-7 x group 0 = +0.013, rows 8-15 x group 1 = "
    "-0.013, rows 16-23 x group 0 = 0.0, rows 24-31 x group 2 = 0.013 + N(0, 2e-6) noise (after fp16 a row's range is 1 or 2 ulps = 7.6e-6 or 1.5e-5, "
    "so some rows hit the 1e-5 floor and some do not), "
    "rows 32-39 x group 3 = 0.5. AutoAWQ clamps max-min to >= 1e-5 so s = RNE_f16(1e-5/15) (an fp16 subnormal, "
    "6.556e-7) and a constant positive group dequantizes to 15*s ~ 9.8e-6, a negative one to -15*s, zero to 0: "
    "AutoAWQ's clamp floor is visible in expected.safetensors."
)


def mutate_const_groups(model):
    w = model.model.layers[0].self_attn.q_proj.weight
    w[0:8, 0:32] = 0.013
    w[8:16, 32:64] = -0.013
    w[16:24, 0:32] = 0.0
    g = torch.Generator().manual_seed(77)
    w[24:32, 64:96] = (0.013 + 2e-6 * torch.randn((8, 32), generator=g)).half()
    w[32:40, 96:128] = 0.5


def make_tokenizer(seed=0, vocab_size=512):
    """Tiny byte-level BPE trained with `tokenizers` on seeded pseudo-text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    from transformers import PreTrainedTokenizerFast
    rng = random.Random(seed)
    syll = ["ka", "to", "ri", "mu", "sen", "la", "qu", "zo", "pe", "ni", "ba", "dor", "ex", "wi",
            "th", "an", "er", "in", "on", "st", "ch", "ea", "ou"]
    words = ["".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(300)]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 15))) + rng.choice([".", "!", "?", ","])
             for _ in range(2000)]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    assert fast.convert_tokens_to_ids(["<unk>", "<s>", "</s>"]) == [0, 1, 2]
    return fast


# ----------------------------------------------------------------------------

def verify_existing():
    """Re-checks the committed files without regenerating: refdecode(model) == expected for
    every case, and for GEMM cases AutoAWQ's dequantize_gemm(model) == expected too."""
    bad = 0
    for case in sorted(os.listdir(GOLDEN)):
        case_dir = os.path.join(GOLDEN, case)
        if not os.path.exists(os.path.join(case_dir, "meta.json")):
            continue
        with open(os.path.join(case_dir, "meta.json")) as f:
            meta = json.load(f)
        if not meta["format"].startswith("autoawq-"):
            continue   # other helpers' cases
        model_dir = os.path.normpath(os.path.join(case_dir, meta.get("model_dir", "model")))
        exp, _ = refdecode.read_safetensors(os.path.join(case_dir, "expected.safetensors"))
        dec = refdecode.decode_checkpoint(model_dir, fmt=meta["format"])
        assert sorted(k[:-7] for k in dec) == meta["quantized_layers"] == sorted(k[:-7] for k in exp), case
        sd = refdecode.load_state_dict(model_dir) if meta["format"] == "autoawq-gemm" else None
        n = 0
        for k in sorted(exp):
            n += refdecode.compare_bits(dec[k], exp[k])
            if sd is not None:
                n += refdecode.compare_bits(peer_dequant_gemm(sd, k[:-7], meta["group_size"]), exp[k])
        print(f"{case:24s} {meta['format']:18s} {'OK' if n == 0 else f'{n} MISMATCHES'}")
        bad += n
    return 1 if bad else 0


def main():
    if "--verify-only" in sys.argv[1:]:
        sys.exit(verify_existing())
    torch.set_num_threads(1)   # determinism + 2-core machine
    check_gemv_fast_unpack_against_peer()
    os.makedirs(GOLDEN, exist_ok=True)

    # h128: hidden 128, 2 heads x head_dim 64, 1 kv head (k/v N=64);  h64: hidden 64, 2 heads x 32, 1 kv head (N=32)
    h128 = dict(hidden_size=128, num_attention_heads=2, num_key_value_heads=1, num_hidden_layers=1, vocab_size=128)
    h64 = dict(hidden_size=64, num_attention_heads=2, num_key_value_heads=1, num_hidden_layers=1, vocab_size=256)
    cases = [
        # --- GEMM
        dict(case="awq-gemm-g128", arch="llama", version="gemm", group_size=128, seed=101,
             notes="hidden 128, 2 heads x 64, 1 kv head (k/v N=64), intermediate 256: K=128 -> 1 group, "
                   "down_proj K=256 -> 2 groups.",
             **{**h128, "intermediate_size": 256}),
        dict(case="awq-gemm-g64", arch="llama", version="gemm", group_size=64, seed=102,
             notes="hidden 192 -> K=192 = 3 groups (odd); 2 heads x head_dim 96 with 1 kv head -> k_proj/v_proj "
                   "N=96 (not a multiple of 64); intermediate 64 -> down_proj K=64 = 1 group.",
             hidden_size=192, num_attention_heads=2, num_key_value_heads=1, num_hidden_layers=1,
             intermediate_size=64, vocab_size=128),
        dict(case="awq-gemm-g32", arch="llama", version="gemm", group_size=32, seed=103,
             notes="hidden 64 (2 groups), k/v N=32, intermediate 160 -> down_proj K=160 = 5 groups; gate/up N=160.",
             **{**h64, "intermediate_size": 160}),
        dict(case="awq-gemm-perchannel", arch="llama", version="gemm", group_size=-1, seed=104,
             notes="config group_size=-1 means G=K per module (64 for attention/gate/up, 128 for down_proj): "
                   "scales/qzeros have a single row. AutoAWQ 0.2.9's WQLinear_GEMM.from_linear crashes with "
                   "group_size=-1 (scale_zeros[idx // -1] -> IndexError), so the script passes G=K to "
                   "pseudo_quantize_tensor/from_linear per module (numerically identical: pseudo_quantize_tensor "
                   "with -1 quantizes per row) while AwqConfig(q_group_size=-1) writes the config.",
             **{**h64, "intermediate_size": 128}),
        dict(case="awq-gemm-bias", arch="qwen2", version="gemm", group_size=32, seed=105,
             notes="Qwen2 (hidden 64, k/v N=32, intermediate 128): q_proj/k_proj/v_proj carry fp16 biases "
                   "(random, N(0, 0.05^2)) saved as <module>.bias; o_proj and MLP have no bias. "
                   "expected.safetensors holds weights only.",
             **{**h64, "intermediate_size": 128}),
        dict(case="awq-gemm-tied", arch="llama", version="gemm", group_size=32, seed=106,
             notes="tie_word_embeddings=true: AutoAWQ save_quantized passes shared_tensors_to_discard="
                   "model._tied_weights_keys, so only model.embed_tokens.weight is stored (no lm_head.weight); "
                   "huggingface_hub also records the alias in the safetensors __metadata__ "
                   "({'format': 'pt', 'lm_head.weight': 'model.embed_tokens.weight'}); the writer emits these two keys in "
                   "random (HashMap) order, the script sorts them so the file is byte-stable.",
             tie_word_embeddings=True, **{**h64, "intermediate_size": 128}),
        dict(case="awq-gemm-const-group", arch="llama", version="gemm", group_size=32, seed=107,
             notes=CONST_GROUP_NOTES, mutate=mutate_const_groups,
             **{**h128, "intermediate_size": 64}),
        # --- GEMV
        dict(case="awq-gemv-g128", arch="llama", version="gemv", group_size=128, seed=201,
             notes="K=128 -> 1 group, Wz=1 (scales [N,8], 7 zero pad columns); down_proj K=256 -> 2 groups, "
                   "Wz=1 (6 pad columns). qzeros nibbles past K/G are 0.",
             **{**h128, "intermediate_size": 256}),
        dict(case="awq-gemv-g64", arch="llama", version="gemv", group_size=64, seed=202,
             notes="G=64 uses size_multiplier 2 in calculate_zeros_width: K=64 (1 group) -> Wz=2, scales [N,16] "
                   "(15 zero pad columns); down_proj K=192 (3 groups) -> Wz=2 (13 pad columns). "
                   "1 head x head_dim 64, 1 kv head -> k/v N=64.",
             hidden_size=64, num_attention_heads=1, num_key_value_heads=1, num_hidden_layers=1,
             intermediate_size=192, vocab_size=256),
        # --- GEMV_fast
        dict(case="awq-gemv-fast-g128", arch="llama", version="gemv_fast", group_size=128, seed=301,
             notes="qweight int16 [N/4, K]; scales and qzeros (fp16 scaled zeros = -RNE(s*z)) [8*Wz, N]; "
                   "K=128 -> 8 rows (7 zero); down_proj K=256 -> 8 rows (6 zero).",
             **{**h128, "intermediate_size": 256}),
        dict(case="awq-gemv-fast-g64", arch="llama", version="gemv_fast", group_size=64, seed=302,
             notes="K=64 (1 group) -> Wz=2 -> scales/qzeros [16, N]; down_proj K=320 (5 groups) -> [16, N]; "
                   "1 head x head_dim 64, 1 kv head (k/v N=64).",
             hidden_size=64, num_attention_heads=1, num_key_value_heads=1, num_hidden_layers=1,
             intermediate_size=320, vocab_size=256),
    ]
    for c in cases:
        write_case(**c)

    # --- main-job checkpoint
    tok = make_tokenizer(seed=0, vocab_size=512)
    write_case("tiny-llama-awq", arch="llama", version="gemm", group_size=128, seed=7,
               model_dir=os.path.join(DATA, "tiny-llama-awq"), tokenizer=tok,
               notes="Main-job checkpoint in tests/data/tiny-llama-awq (model_dir). 2 layers, hidden 256, "
                     "intermediate 512, 4 heads (head_dim 64), 2 kv heads (k/v N=128), vocab 512, untied lm_head. "
                     "Tokenizer: byte-level BPE (vocab 512, <unk>=0 <s>=1 </s>=2) trained with `tokenizers` on "
                     "seeded pseudo-text, saved via PreTrainedTokenizerFast.save_pretrained.",
               hidden_size=256, intermediate_size=512, num_attention_heads=4, num_key_value_heads=2,
               num_hidden_layers=2, vocab_size=512)
    print("total tests/data:", f"{_dir_size(DATA)/1024:.0f} KiB")
    assert verify_existing() == 0


if __name__ == "__main__":
    main()
