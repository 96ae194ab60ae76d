#!/usr/bin/env python3
"""Perplexity (and KL divergence to the dense model) of dense and AutoAWQ GEMM checkpoints by
transformers' own f32 model: the issue-18 quality table of dense, AutoAWQ (mended / unmended /
RTN) and `awq quantize` outputs.

    /work/venv/bin/python tools/perplexity_reference.py --dense models/kjv-llama \\
        [--text models/kjv-llama/eval.txt] [--ctx 512] [--stride 512] [--threads 1] \\
        [--json OUT.json] [--rtn NAME] NAME=DIR [NAME=DIR ...]

Every model runs in transformers 4.51's own model class in f32. AutoAWQ GEMM checkpoints (ours
included) are decoded without autoawq's kernels by AutoAWQ's own
awq.utils.packing_utils.dequantize_gemm (f16 values, as AutoAWQ's kernels see them) into a dense
f32 model (tools/autoawq_gemm.py load_f32_model).

Convention: Hugging Face's sliding window ("Perplexity of fixed-length models", as
tools/eval_ppl_transformers.py on branch eval): ids = tokenizer(text).input_ids with the dense
model's tokenizer (BOS once, at the start); windows of CTX tokens start at 0, STRIDE, ... until
one reaches the end; a window scores its positions not scored before (never its first);
PPL = exp(sum NLL / scored). KLD = mean over scored positions of KL(dense || model), natural log.
Recovery = (ppl(RTN) - ppl(model)) / (ppl(RTN) - ppl(dense)): the share of RTN's perplexity gap
the model recovers (--rtn names the RTN entry; default: the first NAME containing "rtn").
Venv: tools/requirements-awqref.txt.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from autoawq_gemm import cpu_name, load_f32_model  # noqa: E402


def windows(n: int, ctx: int, stride: int):
    """(begin, end, first scored position in the window) of the HF sliding window."""
    prev_end = 0
    for begin in range(0, n, stride):
        end = min(begin + ctx, n)
        yield begin, end, max(prev_end - begin, 1)
        prev_end = end
        if end == n:
            break


@torch.no_grad()
def evaluate(models: dict, ids: torch.Tensor, ctx: int, stride: int) -> dict:
    """{name: {ppl, kld, nll_sum, scored}}; models["dense"] is the KLD reference."""
    nll = {k: 0.0 for k in models}
    kld = {k: 0.0 for k in models}
    scored = 0
    for begin, end, first in windows(ids.numel(), ctx, stride):
        x = ids[begin:end].view(1, -1)
        target = x[0, first:]
        if target.numel() == 0:
            continue
        ref = None
        for name, model in models.items():
            logp = F.log_softmax(model(x).logits[0, first - 1:-1].float(), dim=-1)
            nll[name] += float(-logp.gather(1, target.view(-1, 1)).double().sum())
            if ref is None:
                ref = logp
            kld[name] += float((ref.exp() * (ref - logp)).sum(dim=-1).double().sum())
        scored += target.numel()
    return {k: {"ppl": math.exp(nll[k] / scored), "kld": kld[k] / scored, "nll_sum": nll[k], "scored": scored}
            for k in models}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", metavar="NAME=DIR")
    ap.add_argument("--dense", required=True, help="the dense model (reference, tokenizer)")
    ap.add_argument("--text", help="default: DENSE/eval.txt")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--stride", type=int, default=0, help="default: ctx")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rtn", help="the NAME recovery is measured against")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    dirs = {"dense": args.dense}
    for spec in args.models:
        name, sep, path = spec.partition("=")
        if not sep or not name or name in dirs:
            ap.error(f"{spec}: expected a new NAME=DIR")
        dirs[name] = path
    text_path = args.text or os.path.join(args.dense, "eval.txt")
    with open(text_path, encoding="utf-8") as f:
        ids = torch.tensor(AutoTokenizer.from_pretrained(args.dense)(f.read()).input_ids)
    models = {name: load_f32_model(path) for name, path in dirs.items()}
    res = evaluate(models, ids, args.ctx, args.stride or args.ctx)

    rtn = args.rtn or next((n for n in dirs if "rtn" in n), None)
    dense_ppl = res["dense"]["ppl"]
    print(f"{text_path}: {ids.numel()} tokens, {res['dense']['scored']} scored; windows {args.ctx}/"
          f"{args.stride or args.ctx}; transformers f32, {torch.get_num_threads()} thread(s), {cpu_name()}")
    print("| model | dir | perplexity | vs dense | KLD to dense | recovery of RTN gap |")
    print("|---|---|---|---|---|---|")
    for name, r in res.items():
        rec = ""
        if rtn and name not in ("dense", rtn) and res[rtn]["ppl"] != dense_ppl:
            r["recovery"] = (res[rtn]["ppl"] - r["ppl"]) / (res[rtn]["ppl"] - dense_ppl)
            rec = f"{100 * r['recovery']:.1f} % (of {rtn})"
        print(f"| {name} | {dirs[name]} | {r['ppl']:.4f} | {100 * (r['ppl'] / dense_ppl - 1):+.3f} % | "
              f"{r['kld']:.6f} | {rec} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"text": text_path, "tokens": ids.numel(), "ctx": args.ctx, "stride": args.stride or args.ctx,
                       "threads": torch.get_num_threads(), "cpu": cpu_name(), "rtn": rtn,
                       "dirs": dirs, "results": res}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
