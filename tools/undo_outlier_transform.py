#!/usr/bin/env python3
"""Undo the bundled model's outlier transform exactly: the model without the outlier channels.

models/kjv-llama was trained, then (tools/make_bundled_model.py, "Outlier channels" in its model
card) in every decoder layer the channels C of `input_layernorm.weight` and
`post_attention_layernorm.weight` were multiplied by f and the matching input columns of q/k/v
(resp. gate/up) divided by f. f is a power of two, so this script undoes it bit for bit: the norm
channels divided by f, the q/k/v and gate/up input columns multiplied by f (exact in bf16 unless a
value over- or underflows, which is checked). C and f are read from the model card.

Writes OUT (a copy of MODEL with the new model.safetensors; the card is left out) and checks
that the two models compute the same function: transformers' f32 logits of both on the first
TOKENS tokens of MODEL/eval.txt (max |difference| printed; the products norm·weight are equal bit
for bit, so only summation order can differ).

Venv: tools/requirements-models.txt (torch, transformers, safetensors), e.g. /work/venv.

    python tools/undo_outlier_transform.py models/kjv-llama /tmp/kjv-plain
"""
from __future__ import annotations

import argparse
import os
import re
import shutil

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer


def transform_of(card: str) -> tuple[list[int], float]:
    text = open(card, encoding="utf-8").read()
    ch = re.search(r"channels \*\*\[([0-9, ]+)\]\*\*", text)
    f = re.search(r"\*\*f = ([0-9.]+)\*\*", text)
    if not ch or not f:
        raise SystemExit(f"{card}: no 'channels **[...]**' / '**f = F**' (the outlier transform) found")
    return [int(c) for c in ch.group(1).split(",")], float(f.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--tokens", type=int, default=512)
    args = ap.parse_args()
    channels, f = transform_of(os.path.join(args.model, "README.md"))
    assert f > 0 and (f == 2 ** round(torch.log2(torch.tensor(f)).item())), "f must be a power of two"
    sd = load_file(os.path.join(args.model, "model.safetensors"))
    idx = torch.tensor(channels)
    layers = sorted({int(m.group(1)) for k in sd if (m := re.match(r"model\.layers\.(\d+)\.", k))})
    out = {k: v.clone() for k, v in sd.items()}
    for i in layers:
        p = f"model.layers.{i}."
        for norm, lins in (("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
                           ("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj"))):
            w = out[p + norm + ".weight"]
            w[idx] = w[idx] / f
            for lin in lins:
                m = out[p + lin + ".weight"]
                m[:, idx] = m[:, idx] * f
            # exact: undoing the undo gives the stored tensors back bit for bit
            assert torch.equal(w[idx] * f, sd[p + norm + ".weight"][idx]), f"{p + norm}: not exact"
            for lin in lins:
                back = (out[p + lin + ".weight"][:, idx] / f)
                assert torch.equal(back, sd[p + lin + ".weight"][:, idx]), f"{p + lin}: not exact"
            assert torch.isfinite(w).all()
    os.makedirs(args.out, exist_ok=True)
    for name in os.listdir(args.model):
        if name not in ("model.safetensors", "README.md"):
            shutil.copy(os.path.join(args.model, name), os.path.join(args.out, name))
    save_file(out, os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    print(f"undid f = {f:g} on channels {channels} in {len(layers)} layers -> {args.out}")

    tok = AutoTokenizer.from_pretrained(args.model)
    text = open(os.path.join(args.model, "eval.txt"), encoding="utf-8").read()
    ids = tok(text, return_tensors="pt").input_ids[:, : args.tokens]
    torch.set_num_threads(2)
    logits = []
    for d in (args.model, args.out):
        m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
        with torch.no_grad():
            logits.append(m(ids).logits[0])
    diff = (logits[0] - logits[1]).abs()
    same = (logits[0].argmax(-1) == logits[1].argmax(-1)).float().mean().item()
    print(f"logits on {ids.size(1)} tokens of eval.txt: max |diff| {diff.max().item():.3g}, mean {diff.mean().item():.3g}, "
          f"max |logit| {logits[0].abs().max().item():.3g}, same top-1 {100 * same:.2f} %")


if __name__ == "__main__":
    main()
