#!/usr/bin/env python3
"""Differential check of `awq tokenize` against the reference libraries on random texts.

    python tools/verify_tokenizers.py build/release/awq tests/data/tokenizers/* [--n 300] [--seed 1]

For each tokenizer directory (tokenizer.json through Hugging Face `tokenizers`, or transformers' AutoTokenizer where
tokenizer_config.json names a Llama/CodeLlama/Gemma class; tokenizer.model
through sentencepiece with BOS, as the golden generator does), encodes N random texts made of
pieces that stress pre-tokenizer regexes and added-token matching (several scripts, combining
marks, emoji and ZWJ, digit runs, contractions in both cases, every kind of Unicode space and line
break, the special tokens of all styles) and compares the ids and the decoded text (skip_special
False and True). Needs the venv of tools/requirements-tokenizers.txt. Exit status 1 on any mismatch.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

PIECES = [
    "Hello", " world", "WORLD", "don't", "I'M", "they'll", "we'Ve", "she's", "'s", "'", "''", "x'", "ſ", "K",
    "Café", "naïve", "Straße", "e\u0301", "A\u030a", "\ufb01", "ǅ", "İ", "Σ", "ς",
    "Привет", "мир", "Ξεσκεπάζω", "日本語", "中文", "한국어", "مرحبا", "١٢٣", "עברית", "हिन्दी", "ไทย",
    "😀", "👍🏽", "👨\u200d👩\u200d👧", "🏳️\u200d🌈", "\u200d", "\u200b", "\ufeff", "🦀",
    "0", "12", "123", "1234", "12345678", "3.14", "1,000", "½", "²", "Ⅻ",
    " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n ", "\u00a0", "\u2003", "\u3000", "\u2028", "\u0085",
    "\u180e", "\x0b", "\x0c",
    ".", ",", "!", "?", "...", "--", "—", "«", "»", "(", ")", "#", "$", "%", "_", "__init__", "<", ">", "|", "▁", "▁▁",
    "<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|eot_id|>",
    "<mask>", " <mask>", "awq-tok", "hello world", "<|tool|>", "<0x41>", "\x00", "\x7f", "\U0010fffd", "\U0001d518",
]


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 24)))


def awq(binary: str, model: str, text: str | None = None, ids: list[int] | None = None, skip: bool = False):
    args = [binary, "tokenize", model] + (["--decode"] + (["--skip-special"] if skip else []) if ids is not None else [])
    data = (json.dumps({"ids": ids}) if ids is not None else text).encode("utf-8")
    r = subprocess.run(args, input=data, capture_output=True)
    if r.returncode != 0:
        return "ERROR: " + r.stderr.decode(errors="replace").strip()
    return r.stdout.decode("utf-8") if ids is not None else json.loads(r.stdout)["ids"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("awq")
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    bad = 0
    for d in a.dirs:
        if not os.path.isdir(d):
            continue
        rng = random.Random(a.seed)
        if os.path.exists(os.path.join(d, "tokenizer.json")):
            from tokenizers import Tokenizer
            tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
            enc = lambda t: tok.encode(t).ids
            cfg_path = os.path.join(d, "tokenizer_config.json")
            cls = json.load(open(cfg_path)).get("tokenizer_class", "") if os.path.exists(cfg_path) else ""
            if cls.removesuffix("Fast") in ("LlamaTokenizer", "CodeLlamaTokenizer", "GemmaTokenizer"):
                import transformers  # these classes rebuild the post-processor (BOS/EOS flags)
                auto = transformers.AutoTokenizer.from_pretrained(d)
                enc = lambda t: auto(t)["input_ids"]
            dec = lambda ids, skip: tok.decode(ids, skip_special_tokens=skip)
        elif os.path.exists(os.path.join(d, "tokenizer.model")):
            import sentencepiece as spm
            sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
            enc = lambda t: [sp.bos_id()] + sp.encode(t)
            dec = lambda ids, skip: sp.decode(ids) if skip else None
        else:
            continue
        n_bad = 0
        for _ in range(a.n):
            text = random_text(rng)
            want = enc(text)
            got = awq(a.awq, d, text=text)
            if got != want:
                n_bad += 1
                if n_bad <= 3:
                    print(f"{d}: ids differ for {text!r}:\n  lib {want}\n  awq {got}")
                continue
            for skip in (False, True):
                w = dec(want, skip)
                if w is None:
                    continue
                g = awq(a.awq, d, ids=want, skip=skip)
                if g != w:
                    n_bad += 1
                    if n_bad <= 3:
                        print(f"{d}: decode(skip={skip}) differs for {text!r}:\n  lib {w!r}\n  awq {g!r}")
        print(f"{d}: {a.n} random texts, {n_bad} mismatches")
        bad += n_bad
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
