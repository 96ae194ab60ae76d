#!/usr/bin/env python3
"""AutoAWQ 0.2.9's own quantizer on a CPU, on `awq quantize`'s calibration blocks: the reference
`awq quantize` is measured against (issue 18: perplexity <= AutoAWQ's, >= 10x faster).

    nice -n 10 /work/venv/bin/python tools/autoawq_reference.py OUT_ROOT \\
        [--model models/kjv-llama] [--calib FILE] [--samples 64] [--seqlen 512] \\
        [--variants mended,unmended,rtn] [--threads 1] [--force]

Writes, under OUT_ROOT:
  (with --dtype other than float16, each name below ends in -DTYPE)
  autoawq-mended/    AwqQuantizer (w4 g128 zero point, GEMM, duo scaling, clip on: AutoAWQ's
                     defaults) with its CPU aliasing bug mended (see below);
  autoawq-unmended/  the same, exactly as AutoAWQ 0.2.9 runs on a CPU (the bug's effect);
  autoawq-rtn/       plain round to nearest by AutoAWQ's own pseudo_quantize_tensor and
                     WQLinear_GEMM packing (no search): the RTN baseline in AutoAWQ's arithmetic;
  calib_tokens.txt   the calibration token ids, whitespace-separated (`awq quantize --calib-tokens`);
  autoawq_reference.json  CPU, threads, versions, calibration, per variant wall/CPU seconds and
                     the aliasing probe (below).
Each output is an AutoAWQ GEMM checkpoint as AutoAWQ's save_quantized writes it (f16), plus the
model's tokenizer files.

Calibration. `awq quantize` tokenizes the whole calibration text once (tokenizer(text).input_ids:
BOS once, at the start) and cuts consecutive blocks of exactly SEQLEN tokens, at most SAMPLES
of them (src/quant/quantize_model.cc calibration_blocks). Those blocks are given to AutoAWQ as its
"list of token lists" calib_data with max_calib_samples = SAMPLES and max_calib_seq_len = SEQLEN:
every block is exactly SEQLEN long, so none is dropped, and its concatenate-and-split gives back
the same blocks (checked at run time: the script stops if AutoAWQ's batch differs). AutoAWQ's
pile-val download and document logic are never used.

The bug and the mend. _compute_best_scale saves the inspected module's weights with
`{k: v.cpu() for k, v in module2inspect.state_dict().items()}`. On a CPU `.cpu()` returns the same
tensor, so the "saved" weights alias the live ones; the first grid trial's in-place
`fc.weight.mul_(scales)` scales them, and load_state_dict then "restores" the scaled weights
before every later trial and after the search (llm-awq issue 28; issue 18).
The mend (variant `mended`) replaces nothing in site-packages: for the duration of each
_compute_best_scale call, module2inspect.state_dict returns clones. The probe (both variants)
compares the inspected module's weights before and after each search: AutoAWQ intends them
unchanged; `weights_changed` counts the searches that left them changed, and
`left_as_first_trial_scaled` those whose weights are then exactly the originals times the first
trial's (ratio 0) scales, bit for bit. With duo scaling (the default) those scales are
1/(mean normalised |w| + 1e-4), normalised; with x-only scaling they are 1, so the bug is silent.

Threads: --threads (default 1: the machine is shared); torch.get_num_threads() is recorded. Times
are wall and process CPU seconds of quantize() alone and of load + quantize + save.
Venv: tools/requirements-awqref.txt.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from autoawq_gemm import calibration_blocks, cpu_name, import_autoawq  # noqa: E402

QUANT_CONFIG = {"zero_point": True, "q_group_size": 128, "w_bit": 4, "version": "GEMM"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model")


@contextlib.contextmanager
def cloned_state_dict(module: torch.nn.Module):
    """While active, module.state_dict() returns clones: a saved copy that no in-place
    operation on the module's parameters can reach (the mend of the aliasing bug)."""
    original = module.state_dict

    def cloning(*args, **kwargs):
        return {k: v.detach().clone() for k, v in original(*args, **kwargs).items()}

    module.state_dict = cloning
    try:
        yield
    finally:
        del module.state_dict


def quantizer_classes():
    """(probing AutoAWQ quantizer, probing and mended quantizer)."""
    from awq.quantize.quantizer import AwqQuantizer

    class Probed(AwqQuantizer):
        """AutoAWQ's AwqQuantizer, recording whether each scale search leaves the inspected
        module's weights as it found them (it means to: it reloads its saved state dict)."""
        probe: list = []

        def _compute_best_scale(self, x, w_mean, x_mean, module2inspect, linears2scale, fp16_output, kwargs={}):
            before = {k: v.detach().clone() for k, v in module2inspect.state_dict().items()}
            best = self._search(x, w_mean, x_mean, module2inspect, linears2scale, fp16_output, kwargs)
            after = module2inspect.state_dict()
            worst = 0.0
            for k, v in after.items():
                ref = before[k].float()
                worst = max(worst, float((v.float() - ref).abs().max() / ref.abs().max().clamp(min=1e-30)))
            # The bug's signature: the weights left behind are the originals times the first grid
            # trial's scales (ratio 0), computed exactly as _compute_best_scale does.
            s0 = (x_mean.view(-1).pow(0.0) / (w_mean.view(-1).pow(1.0) + 1e-4)).clamp(min=1e-4) \
                if self.duo_scaling else x_mean.view(-1).pow(0.0).clamp(min=1e-4)
            s0 = (s0 / (s0.max() * s0.min()).sqrt()).view(1, -1)
            inner = {id(m): (n + "." if n else "") + "weight" for n, m in module2inspect.named_modules()}
            first_trial = all(torch.equal(after[inner[id(fc)]], before[inner[id(fc)]] * s0) for fc in linears2scale)
            names = {id(m): n for n, m in self.model.named_modules()}
            self.probe.append({"module": names.get(id(module2inspect), "?"),
                               "linears": [names.get(id(m), "?") for m in linears2scale],
                               "max_rel_change": worst,
                               "left_as_first_trial_scaled": worst > 0 and first_trial})
            return best

        def _search(self, *args):
            return AwqQuantizer._compute_best_scale(self, *args)

    class Mended(Probed):
        def _search(self, x, w_mean, x_mean, module2inspect, *rest):
            with cloned_state_dict(module2inspect):
                return AwqQuantizer._compute_best_scale(self, x, w_mean, x_mean, module2inspect, *rest)

    return Probed, Mended


def expect_blocks(blocks: list[list[int]]):
    """Wraps AutoAWQ's get_calib_dataset so the run stops unless AutoAWQ's batch is `blocks`."""
    import awq.quantize.quantizer as qmod
    original = qmod.get_calib_dataset

    def checked(*args, **kwargs):
        got = original(*args, **kwargs)
        if [g.view(-1).tolist() for g in got] != blocks:
            raise SystemExit("AutoAWQ's calibration batch differs from awq quantize's blocks")
        return got

    qmod.get_calib_dataset = checked


def copy_tokenizer(model_dir: str, out: str):
    for name in TOKENIZER_FILES:
        if os.path.exists(os.path.join(model_dir, name)):
            shutil.copy2(os.path.join(model_dir, name), os.path.join(out, name))


def rtn_quantize(awq_model):
    """Round to nearest with AutoAWQ's own pseudo_quantize_tensor and WQLinear_GEMM packing."""
    from awq.models._config import AwqConfig
    from awq.quantize.quantizer import AwqQuantizer
    from awq.utils.module import get_named_linears
    awq_model.quant_config = AwqConfig.from_dict(dict(QUANT_CONFIG))
    q = AwqQuantizer.__new__(AwqQuantizer)   # no calibration: only the quantize-and-pack step
    q.w_bit, q.group_size = awq_model.quant_config.w_bit, awq_model.quant_config.q_group_size
    q.zero_point, q.version = awq_model.quant_config.zero_point, awq_model.quant_config.version
    for layer in awq_model.get_model_layers(awq_model.model):
        q._apply_quant(layer, get_named_linears(layer))
    awq_model.is_quantized = True


def run_variant(variant: str, args, blocks, out: str, dtype) -> dict:
    from awq import AutoAWQForCausalLM
    from transformers import AutoTokenizer
    Probed, Mended = quantizer_classes()
    Probed.probe = []
    t0, c0 = time.perf_counter(), time.process_time()
    awq_model = AutoAWQForCausalLM.from_pretrained(args.model, torch_dtype=dtype, device_map=None)
    tok = AutoTokenizer.from_pretrained(args.model)
    t1, c1 = time.perf_counter(), time.process_time()
    if variant == "rtn":
        rtn_quantize(awq_model)
    else:
        awq_model.quantize(tok, quant_config=dict(QUANT_CONFIG), calib_data=blocks,
                           max_calib_samples=len(blocks), max_calib_seq_len=args.seqlen,
                           quantizer_cls=Mended if variant == "mended" else Probed)
    t2, c2 = time.perf_counter(), time.process_time()
    awq_model.save_quantized(out)
    copy_tokenizer(args.model, out)
    t3, c3 = time.perf_counter(), time.process_time()
    changed = [p for p in Probed.probe if p["max_rel_change"] > 0]
    first_trial = [p for p in changed if p["left_as_first_trial_scaled"]]
    return {"variant": variant, "dir": out,
            "quantize_wall_s": round(t2 - t1, 2), "quantize_cpu_s": round(c2 - c1, 2),
            "total_wall_s": round(t3 - t0, 2), "total_cpu_s": round(c3 - c0, 2),
            "scale_searches": len(Probed.probe), "weights_changed": len(changed),
            "left_as_first_trial_scaled": len(first_trial),
            "probe": Probed.probe}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_root")
    ap.add_argument("--model", default="models/kjv-llama")
    ap.add_argument("--calib", help="calibration text (default: MODEL/calib.txt)")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--variants", default="mended,unmended,rtn")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"],
                    help="AutoAWQ's load dtype (its default and only tested one: float16)")
    ap.add_argument("--force", action="store_true", help="replace existing outputs")
    args = ap.parse_args()
    variants = args.variants.split(",")
    if not set(variants) <= {"mended", "unmended", "rtn"}:
        ap.error("--variants takes mended, unmended, rtn")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    awq = import_autoawq()
    from transformers import AutoTokenizer
    import transformers

    calib = args.calib or os.path.join(args.model, "calib.txt")
    with open(calib, encoding="utf-8") as f:
        ids = AutoTokenizer.from_pretrained(args.model)(f.read()).input_ids
    blocks = calibration_blocks(ids, args.samples, args.seqlen)
    if len(blocks) < args.samples:
        print(f"warning: {calib} gives {len(blocks)} blocks of {args.seqlen} tokens, not {args.samples}", file=sys.stderr)
    if not blocks:
        raise SystemExit(f"{calib}: fewer than {args.seqlen} tokens")
    expect_blocks(blocks)

    os.makedirs(args.out_root, exist_ok=True)
    flat = [t for b in blocks for t in b]
    with open(os.path.join(args.out_root, "calib_tokens.txt"), "w") as f:
        f.write(" ".join(map(str, flat)) + "\n")
    report = {
        "cpu": cpu_name(), "threads": torch.get_num_threads(), "dtype": args.dtype,
        "versions": {"autoawq": awq.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version()},
        "model": args.model, "quant_config": QUANT_CONFIG, "duo_scaling": True, "apply_clip": True,
        "calibration": {"text": calib, "text_tokens": len(ids), "blocks": len(blocks), "seqlen": args.seqlen,
                        "sha256_of_ids": hashlib.sha256(" ".join(map(str, flat)).encode()).hexdigest()},
        "runs": [],
    }
    dtype = getattr(torch, args.dtype)
    suffix = "" if args.dtype == "float16" else "-" + args.dtype
    for v in variants:
        out = os.path.join(args.out_root, "autoawq-" + v + suffix)
        if os.path.exists(out):
            if not args.force:
                raise SystemExit(f"{out} exists (use --force to replace it)")
            shutil.rmtree(out)
        tmp = out + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        r = run_variant(v, args, blocks, tmp, dtype)
        os.rename(tmp, out)
        r["dir"] = out
        report["runs"].append(r)
        print(f"{v}: quantize {r['quantize_wall_s']} s wall, {r['quantize_cpu_s']} s CPU "
              f"({report['threads']} thread(s), {report['cpu']}); scale searches {r['scale_searches']}, "
              f"weights changed by the search in {r['weights_changed']} "
              f"({r['left_as_first_trial_scaled']} left as the first trial scaled them)", flush=True)
        with open(os.path.join(args.out_root, f"autoawq_reference{suffix}.json"), "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
