#!/usr/bin/env python3
"""Regenerates tests/data/tokenizers/: small tokenizers TRAINED by the reference libraries, and the
ids / decoded texts those libraries give for a varied set of texts.

Run from the repository root (CPU, a few seconds), in a venv made from
tools/requirements-tokenizers.txt:

    python3 -m venv /tmp/venv-tok && /tmp/venv-tok/bin/pip install -r tools/requirements-tokenizers.txt
    /tmp/venv-tok/bin/python tools/make_golden_tokenizers.py

Styles (each a directory with tokenizer.json, tokenizer_config.json, sometimes
generation_config.json), all trained with Hugging Face `tokenizers` on TRAIN_TEXT below:
  gpt2      byte-level BPE, ByteLevel pre-tokenizer with the GPT-2 regex; merges saved in the
            legacy "a b" string form; added tokens with lstrip / single_word / normalized.
  llama3    Split(Llama-3 regex) + ByteLevel(use_regex=false), ignore_merges=true (plus a few whole
            words put in the vocabulary without merges, so that ignore_merges changes the ids),
            post-processor Sequence[ByteLevel, TemplateProcessing(<|begin_of_text|> $A)].
  qwen2     NFC normalizer, Split(Qwen2 regex) + ByteLevel, ByteLevel post-processor; an rstrip token.
  llama2    sentencepiece-style BPE with byte fallback and fused unk, normalizer
            Sequence[Prepend(▁), Replace(' ', ▁)], no pre-tokenizer, TemplateProcessing(<s> $A),
            decoder Sequence[Replace(▁, ' '), ByteFallback, Fuse, Strip(' ', 1, 0)]; merges in the
            legacy string form; a normalized (non-special) added token.
  mistral   the same model, Metaspace pre-tokenizer (prepend_scheme "first", split false), no
            normalizer, decoder Sequence[ByteFallback, Metaspace].
  metaspace Metaspace pre-tokenizer (prepend "always", split true), no byte fallback: unknown
            characters become <unk> (not fused).
  llama2_eos  llama2's tokenizer.json with tokenizer_config.json {"tokenizer_class": "LlamaTokenizerFast",
            "add_eos_token": true}: transformers rebuilds the post-processor as <s> $A </s>; its ids are
            transformers' AutoTokenizer(dir)(text)["input_ids"].
  sp        a sentencepiece BPE model (tokenizer.model, byte fallback, identity normalization),
            trained with the sentencepiece library; ids = sp.encode(text) with BOS prepended
            (as tokenizer_config.json's add_bos_token says).
golden.json: {"texts": [...], "styles": {style: {"cases": [{"ids", "decoded", "decoded_skip"}]}}};
one case per text, in order. "decoded" is tokenizer.decode(ids), "decoded_skip" the same with
skip_special_tokens=True (for sp: sp.decode of the ids, i.e. control tokens dropped; no "decoded").
"roundtrip": whether the library's decode(encode(text, add_special_tokens=False)) gives the text back.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import sentencepiece as spm
import tokenizers
import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

OUT = os.path.join("tests", "data", "tokenizers")

GPT2_RE = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Training text: our own sentences in several scripts, repeated with variations below.
TRAIN_LINES = [
    "The quick brown fox jumps over the lazy dog. It's 12:45 and we've got 3,141,592 reasons.",
    "Quantization stores each weight in four bits; the scales and zero points come per group of 128.",
    "I'm sure they'll say you'd better check what's inside the model before you run it.",
    "Le café de la gare était fermé, mais la boulangère a souri: « déjà vu », dit-elle, naïve.",
    "Über den Straßen Münchens schwebt ein Ballon; Jürgen zählt 1.234 Möwen am Fluss.",
    "El niño comió piñas y jalapeños en la mañana; ¿quién sabe por qué? ¡Qué día!",
    "Съешь же ещё этих мягких французских булок да выпей чаю. Привет, мир!",
    "Москва, Санкт-Петербург и Новосибирск: три города, 2024 год, много снега.",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Καλημέρα κόσμε, η γλώσσα είναι όμορφη.",
    "日本語の文章を少し書きます。東京は今日も晴れです。",
    "中文文本的例子：我们今天去公园散步，天气很好。",
    "한국어 문장도 조금 있습니다. 안녕하세요 세계!",
    "مرحبا بالعالم، هذه جملة عربية قصيرة للاختبار ١٢٣٤٥.",
    "Emoji: 😀 😃 👍 🎉 ❤️ 🔥 and a family 👨‍👩‍👧‍👦 with a flag 🏳️‍🌈 and 👍🏽.",
    "def square(x):\n\treturn x ** 2  # comment\n\nprint(square(12))",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 100 1000 10000 123456789 3.14159 2.71828 -42 +7",
    "Spaces   and\ttabs\t\tand\n\nnewlines\r\nand   trailing   ",
    "Ångström, façade, coöperate, résumé, jalapeño, smörgåsbord, crème brûlée.",
    "THE SHOUTING LINE IS ALL CAPS, WE'RE LOUD AND WE'LL STAY LOUD.",
]


def train_corpus() -> list[str]:
    lines = []
    for rep in range(12):
        for i, line in enumerate(TRAIN_LINES):
            lines.append(line)
            words = line.split(" ")
            lines.append(" ".join(words[rep % len(words):] + words[: rep % len(words)]))
            if (i + rep) % 3 == 0:
                lines.append(line.lower())
    return lines


# Texts whose ids are recorded. Special tokens of every style are written in some of them
# (a token of another style is plain text).
TEXTS = [
    "Hello world",
    "",
    " ",
    "The quick brown fox jumps over the lazy dog. I'm here, you're there; THEY'LL come, she'D go.",
    "Café déjà vu: naïve façade, Ångström, Straße, jalapeño, crème brûlée.",
    "Съешь же ещё этих мягких французских булок. Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "日本語のテキストと中文文本，还有한국어。龘 is rare.",
    "مرحبا بالعالم ١٢٣ and ٤٥٦٧٨",
    "Family 👨‍👩‍👧‍👦, thumbs 👍🏽, rainbow flag 🏳️‍🌈, heart ❤️ and 🦀.",
    "Digits: 1 12 123 1234 12345 1234567890 3.14159 0x1F 1e-9 100,000,000",
    "a  b\t\tc\n\n\nd   \n  e \r\n f     ",
    "\n\n\n",
    "   leading and trailing spaces   ",
    "<s>Hello</s> world<|endoftext|> <|im_start|>user\nHi there<|im_end|>\n<|begin_of_text|>x<|eot_id|>",
    "Masked: the <mask> sat on the mat <mask>.<mask>",
    "single word: awq-tok and xawq-tok and awq-tok!",
    "say hello world and hello worlds",
    "Keep  <|im_end|>   spaces <|tool|>  here",
    "Zebrafish and quokka-wombat, zebrafish, Zebrafish!",
    "e\u0301 vs \u00e9, A\u030a vs \u00c5, \ufb01 ligature",
    "def f(x):\n\treturn x**2  # square\n\n\nprint(f(12))\n",
    "Mixed: Hello мир κόσμε 世界 مرحبا 😀!!! ... ??? --- ___",
    "\u00a0non-breaking\u2003em-space\u3000ideographic\u200bzero-width",
    "ǅungla ǈ ǋ Σίσυφος ΌΣΟΣ İstanbul ﬀ",
    " Unknowns: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🜁 \u0378 end",
]
# Written as one of the texts too: the whole training text, a long realistic input.
TEXTS.append("\n".join(TRAIN_LINES))

GPT2_ADDED = [
    AddedToken("<|endoftext|>", special=True, normalized=False),
    AddedToken("<mask>", special=True, lstrip=True, normalized=False),
    AddedToken("awq-tok", special=False, single_word=True, normalized=True),
]
LLAMA3_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
QWEN2_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA2_SPECIAL = ["<unk>", "<s>", "</s>"]
LEGACY_MERGES = {"gpt2", "llama2"}  # styles whose tokenizer.json has merges as "a b" strings


def byte_level_bpe(pre_tokenizer, vocab_size: int, specials: list[str], ignore_merges=False) -> Tokenizer:
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(train_corpus(), trainer)
    return tok


def legacy_merges(doc: dict) -> dict:
    """Rewrites model.merges from [a, b] pairs to the legacy "a b" strings (both load the same)."""
    doc["model"]["merges"] = [f"{a} {b}" for a, b in doc["model"]["merges"]]
    return doc


def make_gpt2() -> Tokenizer:
    tok = byte_level_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), 700, [])
    tok.add_tokens([GPT2_ADDED[2]])
    tok.add_special_tokens(GPT2_ADDED[:2])
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    return tok


def make_llama3() -> Tokenizer:
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok = byte_level_bpe(pre, 700, [], ignore_merges=True)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in LLAMA3_SPECIAL])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    doc = json.loads(tok.to_str())
    # Whole words without merges that build them: only ignore_merges produces them as one id.
    vocab = doc["model"]["vocab"]
    for word in ["ĠZebrafish", "Zebrafish", "Ġquokka", "Ġworlds"]:
        if word not in vocab:
            vocab[word] = len(vocab)
    # Added tokens must keep ids above the model's: shift them past the new words.
    base = len(vocab)
    remap = {}
    for i, t in enumerate(sorted(doc["added_tokens"], key=lambda t: t["id"])):
        remap[t["id"]] = base + i
        t["id"] = base + i
    for st in doc["post_processor"]["processors"][1]["special_tokens"].values():
        st["ids"] = [remap[i] for i in st["ids"]]
    return Tokenizer.from_str(json.dumps(doc))


def make_qwen2() -> Tokenizer:
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_RE), behavior="isolated", invert=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok = byte_level_bpe(pre, 700, [])
    tok.normalizer = normalizers.NFC()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN2_SPECIAL])
    tok.add_special_tokens([AddedToken("<|tool|>", special=True, normalized=False, rstrip=True, lstrip=True)])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def metaspace_bpe(byte_fallback: bool, fuse_unk: bool, vocab_size: int) -> dict:
    """Trains a sentencepiece-style BPE (words split at ▁, merges never cross it) and returns the
    tokenizer.json document with <unk> <s> </s> first and, with byte fallback, <0x00>..<0xFF> next
    in the model vocabulary (as Llama 2's)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=byte_fallback, fuse_unk=fuse_unk))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=LLAMA2_SPECIAL, show_progress=False,
                                  limit_alphabet=120)
    tok.train_from_iterator(train_corpus(), trainer)
    doc = json.loads(tok.to_str())
    old = sorted(doc["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {t: i for i, (t, _) in enumerate(old[:3])}
    if byte_fallback:
        for b in range(256):
            vocab[f"<0x{b:02X}>"] = len(vocab)
    for t, _ in old[3:]:
        vocab[t] = len(vocab)
    doc["model"]["vocab"] = vocab
    for t in doc["added_tokens"]:
        t["id"] = vocab[t["content"]]
    return doc


def template_bos(doc: dict) -> None:
    bos = doc["model"]["vocab"]["<s>"]
    doc["post_processor"] = json.loads(processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B:1", special_tokens=[("<s>", bos)]).__getstate__())


def llama2_decoder():
    return decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                              decoders.Strip(" ", 1, 0)])


def make_llama2(base: dict) -> Tokenizer:
    doc = json.loads(json.dumps(base))
    doc["normalizer"] = json.loads(normalizers.Sequence([normalizers.Prepend("▁"),
                                                         normalizers.Replace(" ", "▁")]).__getstate__())
    doc["pre_tokenizer"] = None
    doc["decoder"] = json.loads(llama2_decoder().__getstate__())
    template_bos(doc)
    tok = Tokenizer.from_str(json.dumps(doc))
    tok.add_tokens([AddedToken("hello world", special=False, normalized=True)])
    return tok


def make_mistral(base: dict) -> Tokenizer:
    doc = json.loads(json.dumps(base))
    doc["normalizer"] = None
    doc["pre_tokenizer"] = json.loads(pre_tokenizers.Metaspace("▁", "first", split=False).__getstate__())
    doc["decoder"] = json.loads(decoders.Sequence([decoders.ByteFallback(),
                                                   decoders.Metaspace("▁", "first", split=False)]).__getstate__())
    template_bos(doc)
    return Tokenizer.from_str(json.dumps(doc))


def make_metaspace(base: dict) -> Tokenizer:
    doc = json.loads(json.dumps(base))
    doc["normalizer"] = None
    doc["pre_tokenizer"] = json.loads(pre_tokenizers.Metaspace("▁", "always", split=True).__getstate__())
    doc["decoder"] = json.loads(llama2_decoder().__getstate__())
    doc["post_processor"] = None
    return Tokenizer.from_str(json.dumps(doc))


def make_sp(dir_: str) -> spm.SentencePieceProcessor:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            for line in train_corpus():
                f.write(line.replace("\n", " ") + "\n")
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=os.path.join(tmp, "sp"), model_type="bpe", vocab_size=600,
            byte_fallback=True, character_coverage=0.98, normalization_rule_name="identity",
            add_dummy_prefix=True, remove_extra_whitespaces=False, split_digits=True,
            unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
        shutil.copy(os.path.join(tmp, "sp.model"), os.path.join(dir_, "tokenizer.model"))
    return spm.SentencePieceProcessor(model_file=os.path.join(dir_, "tokenizer.model"))


def write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def write_golden(path: str, styles: dict) -> None:
    """golden.json with one text / one case per line (small diffs when regenerated)."""
    dump = lambda o: json.dumps(o, ensure_ascii=False)
    lines = ["{", ' "generator": "tools/make_golden_tokenizers.py",',
             f' "versions": {dump({"tokenizers": tokenizers.__version__, "sentencepiece": spm.__version__, "transformers": transformers.__version__})},',
             ' "texts": [', ",\n".join("  " + dump(t) for t in TEXTS), " ],", ' "styles": {']
    for k, (name, st) in enumerate(styles.items()):
        lines.append(f'  {dump(name)}: {{"vocab_size": {st["vocab_size"]}, "cases": [')
        lines.append(",\n".join("   " + dump(c) for c in st["cases"]))
        lines.append("  ]}" + ("," if k + 1 < len(styles) else ""))
    lines += [" }", "}"]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    json.loads(open(path, encoding="utf-8").read())  # well-formed


def hf_cases(tok: Tokenizer) -> list[dict]:
    cases = []
    for text in TEXTS:
        ids = tok.encode(text).ids
        plain = tok.encode(text, add_special_tokens=False).ids  # without the post-processor's tokens
        cases.append({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                      "decoded_skip": tok.decode(ids, skip_special_tokens=True),
                      "roundtrip": tok.decode(plain, skip_special_tokens=False) == text})
    return cases


def main() -> int:
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    styles: dict[str, dict] = {}
    meta_bf = metaspace_bpe(byte_fallback=True, fuse_unk=True, vocab_size=900)
    meta_unk = metaspace_bpe(byte_fallback=False, fuse_unk=False, vocab_size=600)
    configs = {
        "gpt2": (make_gpt2(), {"bos_token": None, "eos_token": "<|endoftext|>"}, None),
        "llama3": (make_llama3(), {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"},
                   {"bos_token_id": None, "eos_token_id": ["<|end_of_text|>", "<|eot_id|>"]}),
        "qwen2": (make_qwen2(), {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, None),
        "llama2": (make_llama2(meta_bf), {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, None),
        "mistral": (make_mistral(meta_bf), {"bos_token": {"content": "<s>", "special": True}, "eos_token": "</s>"}, None),
        "metaspace": (make_metaspace(meta_unk), {"eos_token": "</s>"}, None),
    }
    for name, (tok, tcfg, gen) in configs.items():
        d = os.path.join(OUT, name)
        os.makedirs(d)
        doc = json.loads(tok.to_str())
        if name in LEGACY_MERGES:  # tokenizers itself writes [a, b] pairs; both forms load the same
            doc = legacy_merges(doc)
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        # Reload from disk: the golden ids come from the file the C++ side reads.
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        write_json(os.path.join(d, "tokenizer_config.json"),
                   {"tokenizer_class": "PreTrainedTokenizerFast", **tcfg})
        if gen is not None:
            gen = {k: ([tok.token_to_id(x) for x in v] if isinstance(v, list) else v) for k, v in gen.items()}
            write_json(os.path.join(d, "generation_config.json"), gen)
        styles[name] = {"cases": hf_cases(tok),
                        "vocab_size": tok.get_vocab_size(with_added_tokens=True)}
    # transformers' LlamaTokenizerFast replaces the post-processor from add_bos_token / add_eos_token:
    # the same tokenizer.json as llama2, ids from AutoTokenizer(dir)(text)["input_ids"].
    d = os.path.join(OUT, "llama2_eos")
    os.makedirs(d)
    shutil.copy(os.path.join(OUT, "llama2", "tokenizer.json"), d)
    write_json(os.path.join(d, "tokenizer_config.json"),
               {"tokenizer_class": "LlamaTokenizerFast", "add_bos_token": True, "add_eos_token": True,
                "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "legacy": True})
    auto = transformers.AutoTokenizer.from_pretrained(d)
    assert type(auto).__name__ == "LlamaTokenizerFast"
    lib = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    cases = []
    for text in TEXTS:
        ids = auto(text)["input_ids"]
        cases.append({"ids": ids, "decoded": lib.decode(ids, skip_special_tokens=False),
                      "decoded_skip": lib.decode(ids, skip_special_tokens=True),
                      "roundtrip": lib.decode(lib.encode(text, add_special_tokens=False).ids, skip_special_tokens=False) == text})
    styles["llama2_eos"] = {"cases": cases, "vocab_size": lib.get_vocab_size(with_added_tokens=True)}

    d = os.path.join(OUT, "sp")
    os.makedirs(d)
    sp = make_sp(d)
    write_json(os.path.join(d, "tokenizer_config.json"),
               {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
                "bos_token": "<s>", "eos_token": "</s>"})
    cases = []
    for text in TEXTS:
        ids = [sp.bos_id()] + sp.encode(text)
        cases.append({"ids": ids, "decoded_skip": sp.decode(ids), "roundtrip": sp.decode(sp.encode(text)) == text})
    styles["sp"] = {"cases": cases, "vocab_size": sp.get_piece_size()}
    write_golden(os.path.join(OUT, "golden.json"), styles)
    for root, _, files in os.walk(OUT):
        for f in files:
            p = os.path.join(root, f)
            print(f"{os.path.getsize(p):8d}  {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
