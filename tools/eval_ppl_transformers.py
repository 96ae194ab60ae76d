#!/usr/bin/env python3
"""Perplexity of a Hugging Face model by transformers' own f32 model: the golden `awq eval` is
tested against (tests/data/eval/*.json).

Convention (Hugging Face's sliding window, docs "Perplexity of fixed-length models"): the ids are
`tokenizer(text).input_ids` (the post-processor's BOS once at the start); windows of CTX tokens
start at 0, STRIDE, 2*STRIDE, ... until a window reaches the end; each window's labels are its ids
with all but the tokens not scored before (positions >= the previous window's end) set to -100,
and the model's own shifted cross-entropy loss gives the mean NLL of the window's scored tokens
(a window's first token is never scored, so neither is the text's). The window's NLL sum is that
loss times the number of labels that survive the shift (exact, unlike the docs' `valid - 1`,
which miscounts windows whose first label is already masked). PPL = exp(Σ NLL / Σ scored).

Venv: python -m venv v && v/bin/pip install -r tools/requirements-models.txt

    python tools/eval_ppl_transformers.py --model models/kjv-llama --ctx 512 --stride 512
    python tools/eval_ppl_transformers.py --model models/kjv-llama --max-chars 6000 --ctx 128 --stride 48
"""
from __future__ import annotations

import argparse
import json
import math
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def windows(n: int, ctx: int, stride: int):
    prev_end = 0
    for begin in range(0, n, stride):
        end = min(begin + ctx, n)
        yield begin, end, prev_end
        prev_end = end
        if end == n:
            break


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", help="default: MODEL/eval.txt")
    ap.add_argument("--max-chars", type=int, default=0, help="use only the text's first N characters")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--stride", type=int, default=0, help="default: ctx")
    args = ap.parse_args()
    stride = args.stride or args.ctx
    torch.manual_seed(0)
    torch.set_num_threads(2)
    text_path = args.text or os.path.join(args.model, "eval.txt")
    with open(text_path, encoding="utf-8") as f:
        text = f.read()
    if args.max_chars:
        text = text[: args.max_chars]
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32).float().eval()
    ids = tok(text, return_tensors="pt").input_ids
    n = ids.size(1)
    nll_sum, scored, per_window = 0.0, 0, []
    with torch.no_grad():
        for begin, end, prev_end in windows(n, args.ctx, stride):
            input_ids = ids[:, begin:end]
            labels = input_ids.clone()
            labels[:, : max(prev_end - begin, 0)] = -100
            count = int((labels[:, 1:] != -100).sum())
            if count == 0:
                continue
            loss = model(input_ids, labels=labels).loss
            nll_sum += float(loss) * count
            scored += count
            per_window.append({"begin": begin, "end": end, "scored": count, "nll_sum": float(loss) * count})
    out = {
        "convention": "huggingface-sliding-window",
        "model": os.path.basename(os.path.normpath(args.model)),
        "text": os.path.basename(text_path),
        "max_chars": args.max_chars,
        "bos_added": bool(tok.bos_token_id is not None and int(ids[0, 0]) == tok.bos_token_id),
        "ctx": args.ctx,
        "stride": stride,
        "tokens": n,
        "scored": scored,
        "nll_sum": nll_sum,
        "ppl": math.exp(nll_sum / scored),
        "windows": per_window,
        "made_by": "tools/eval_ppl_transformers.py (transformers %s, torch %s, f32)" % (
            __import__("transformers").__version__, torch.__version__),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
