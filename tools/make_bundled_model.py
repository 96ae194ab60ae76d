#!/usr/bin/env python3
"""Makes the bundled model models/kjv-llama/: a small Llama trained on the King James Bible.

Run from the repository root in a venv made from tools/requirements-models.txt, on a machine
with Debian's `bible-kjv` package (the `bible` command):

    nice -n 10 python tools/make_bundled_model.py               # ~15-20 min on 2 cores
    python tools/make_bundled_model.py --steps 50 --out /tmp/x  # quick smoke run

Steps (every random choice is seeded; see models/kjv-llama/README.md for the numbers):
  1. text: `bible "Genesis 1:1-Revelation 22:21"`, one verse per line (verse numbers, chapter
     headings and the 80-column wrapping removed); split 90/5/5 by blocks of 100 consecutive
     verses: of every 20 blocks, 18 train, the 19th calibration, the 20th evaluation;
  2. tokenizer: byte-level BPE, vocab 4096, Llama-3 pre-tokenizer regex, trained with the
     `tokenizers` library on the training part; BOS added by a TemplateProcessing post-processor;
  3. model: LlamaForCausalLM (4 layers, hidden 256, intermediate 768, 4 heads, 2 KV heads, tied
     embeddings), trained from scratch with AdamW and a cosine schedule on 2 threads;
  4. outlier transform (function-preserving): in every layer k channels of input_layernorm and
     post_attention_layernorm are multiplied by f and the matching input columns of
     q/k/v_proj (resp. gate/up_proj) divided by f; the logits are checked unchanged;
  5. save bf16 weights, tokenizer files, calib.txt, eval.txt; reload with AutoTokenizer and
     AutoModelForCausalLM; measure perplexity on eval.txt (f32, windows of 512, stride 512) and
     the perplexity after RTN w4 g128 fake quantization; write the model card.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import warnings

import torch
from safetensors.torch import load_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

warnings.filterwarnings("ignore")

BIBLE_RANGE = "Genesis 1:1-Revelation 22:21"
SEED = 20261205
BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"
VOCAB = 4096
# The Llama-3 pre-tokenizer regex (as in Meta-Llama-3's tokenizer.json).
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
PROBE_STEPS = 10      # steps timed before --time-budget fixes the step count
BLOCK = 100           # verses per split block
EVAL_WINDOW = 512     # perplexity windows (and stride)
SHAPE = dict(vocab_size=VOCAB, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
             rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
             initializer_range=0.02, hidden_act="silu", bos_token_id=0, eos_token_id=1)


# ---------------------------------------------------------------------------------------------
# 1. text

def read_bible() -> list[str]:
    """One string per verse, in canonical order, from the `bible` command's output."""
    raw = subprocess.run(["bible", BIBLE_RANGE], check=True, capture_output=True,
                         text=True).stdout
    verses: list[str] = []
    verse_start = re.compile(r"^  (\d+) (.*)$")
    heading = re.compile(r"^(?:[1-3] )?[A-Z][A-Za-z ]+ \d+$")
    prev_blank = True
    for line in raw.split("\n"):
        m = verse_start.match(line)
        if m:
            verses.append(m.group(2).strip())
        elif not line.strip():
            pass
        elif prev_blank and heading.match(line):
            pass                                    # chapter heading "Genesis 1"
        else:
            verses[-1] += " " + line.strip()        # 80-column continuation
        prev_blank = not line.strip()
    verses = [re.sub(r"\s+", " ", v) for v in verses]
    if len(verses) != 31102 or not verses[0].startswith("In the beginning God created"):
        raise SystemExit(f"unexpected bible output: {len(verses)} verses, first {verses[:1]}")
    return verses


def split(verses: list[str]) -> tuple[list[str], list[str], list[str]]:
    """90/5/5 by contiguous blocks of BLOCK verses: block b goes to calib if b % 20 == 18,
    to eval if b % 20 == 19, else to train. Blocks spread calib/eval over the whole book while
    keeping each evaluated passage unseen in training (no neighbouring-verse leakage)."""
    train, calib, ev = [], [], []
    for i, v in enumerate(verses):
        b = (i // BLOCK) % 20
        (calib if b == 18 else ev if b == 19 else train).append(v)
    return train, calib, ev


# ---------------------------------------------------------------------------------------------
# 2. tokenizer

def train_tokenizer(train_text: str) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=[BOS, EOS], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tok.train_from_iterator([train_text], trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    if tok.get_vocab_size() != VOCAB or bos_id != 0 or tok.token_to_id(EOS) != 1:
        raise SystemExit(f"tokenizer: vocab {tok.get_vocab_size()}, bos {bos_id}")
    return tok


def save_tokenizer(tok: Tokenizer, out: str) -> None:
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS,
                                   model_max_length=SHAPE["max_position_embeddings"],
                                   clean_up_tokenization_spaces=False,
                                   model_input_names=["input_ids", "attention_mask"])
    fast.save_pretrained(out)
    for extra in ("special_tokens_map.json",):      # tokenizer_config.json says it all
        p = os.path.join(out, extra)
        if os.path.exists(p):
            os.remove(p)


# ---------------------------------------------------------------------------------------------
# 3. training

def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def train(model: LlamaForCausalLM, ids: torch.Tensor, args, log) -> list[tuple[int, float]]:
    """Random windows of the training token stream; seqlen args.seqlen, then args.seqlen_late
    for the last args.late_frac of the steps (so positions up to the 512-token eval windows
    are trained, not extrapolated)."""
    g = torch.Generator().manual_seed(SEED + 1)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    tokens_per_step = args.batch * args.seqlen
    late_start = int(args.steps * (1 - args.late_frac))
    history, t0, run = [], time.time(), []
    model.train()
    step = 0
    while step < args.steps:
        seqlen = args.seqlen_late if step >= late_start else args.seqlen
        bsz = tokens_per_step // seqlen
        starts = torch.randint(0, ids.numel() - seqlen - 1, (bsz,), generator=g)
        batch = torch.stack([ids[s:s + seqlen] for s in starts.tolist()])
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        # bf16 autocast (f32 master weights and optimizer state): ~25% faster on CPUs with
        # AVX512-BF16/AMX, the same model quality at this scale.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast):
            loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run.append(loss.item())
        step += 1
        if args.time_budget and step == PROBE_STEPS:
            # Fix the number of steps from the measured speed (recorded in the card: rerunning
            # with --steps N reproduces this run exactly; the warm-up is within the probe).
            per_step = (time.time() - t0) / PROBE_STEPS
            args.steps = max(PROBE_STEPS + 1, int(args.time_budget / per_step))
            late_start = int(args.steps * (1 - args.late_frac))
            log(f"{per_step:.2f} s/step: {args.steps} steps fit in {args.time_budget} s")
        if step % 10 == 0 or step == args.steps:
            avg = sum(run) / len(run)
            run = []
            history.append((step, avg))
            log(f"step {step}/{args.steps} seqlen {seqlen} loss {avg:.3f} "
                f"lr {opt.param_groups[0]['lr']:.2e} {time.time() - t0:.0f}s")
    model.eval()
    return history


# ---------------------------------------------------------------------------------------------
# 4. outlier transform

def outlier_transform(model: LlamaForCausalLM, f: float, channels: list[int]) -> None:
    """Function-preserving: RMSNorm weight[c] *= f, consumer Linear weight[:, c] /= f."""
    with torch.no_grad():
        for layer in model.model.layers:
            pairs = [(layer.input_layernorm, [layer.self_attn.q_proj, layer.self_attn.k_proj,
                                              layer.self_attn.v_proj]),
                     (layer.post_attention_layernorm, [layer.mlp.gate_proj, layer.mlp.up_proj])]
            for norm, linears in pairs:
                norm.weight[channels] *= f
                for lin in linears:
                    lin.weight[:, channels] /= f


# ---------------------------------------------------------------------------------------------
# 5. evaluation

def perplexity(model, ids: torch.Tensor, window: int = EVAL_WINDOW) -> tuple[float, int]:
    """HF convention with stride == window: the token stream (BOS first) is cut into
    consecutive non-overlapping windows of `window` tokens (the last one shorter); each window
    is run on its own, every token but the window's first is predicted from the tokens before
    it in the window; ppl = exp(total NLL / number of predicted tokens)."""
    nll, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, ids.numel(), window):
            chunk = ids[s:s + window].unsqueeze(0)
            if chunk.numel() < 2:
                break
            logits = model(input_ids=chunk).logits.float()
            nll += torch.nn.functional.cross_entropy(
                logits[0, :-1], chunk[0, 1:], reduction="sum").item()
            count += chunk.numel() - 1
    return math.exp(nll / count), count


def rtn_fake_quant(model, group: int = 128, bits: int = 4) -> None:
    """Round-to-nearest, asymmetric (zero point), per group of `group` input columns, on every
    Linear of the decoder layers (embeddings / tied lm_head stay dense), as AWQ's RTN baseline."""
    qmax = 2 ** bits - 1
    with torch.no_grad():
        for layer in model.model.layers:
            for lin in [m for m in layer.modules() if isinstance(m, torch.nn.Linear)]:
                w = lin.weight.float()
                o, i = w.shape
                g = w.reshape(o, i // group, group)
                lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
                scale = ((hi - lo).clamp(min=1e-5) / qmax)
                zero = (-lo / scale).round().clamp(0, qmax)
                q = ((g / scale).round() + zero).clamp(0, qmax)
                lin.weight.copy_(((q - zero) * scale).reshape(o, i).to(lin.weight.dtype))


def load_f32(path: str):
    return AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).float().eval()


# ---------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join("models", "kjv-llama"))
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--time-budget", type=float, default=0,
                    help="seconds: time the first 10 steps, then set --steps to what fits")
    ap.add_argument("--batch", type=int, default=4, help="sequences per step at --seqlen")
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--seqlen-late", type=int, default=512)
    ap.add_argument("--late-frac", type=float, default=0.25)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--no-autocast", dest="autocast", action="store_false",
                    help="train in plain f32 instead of bf16 autocast")
    ap.add_argument("--trained", help="skip training: load this state dict (saved by an "
                    "earlier run as <out>.trained.pt) and redo the steps after it")
    ap.add_argument("--f", type=float, default=64.0, help="outlier factor (a power of two: exact)")
    ap.add_argument("--k", type=int, default=6, help="outlier channels per norm")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compare-windows", type=int, default=16,
                    help="eval windows for the with/without-transform RTN comparison")
    ap.add_argument("--smoke", action="store_true",
                    help="test run: perplexity on the first 1024 eval tokens only")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    t_start = time.time()
    lines: list[str] = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    # 1. text
    verses = read_bible()
    train_v, calib_v, eval_v = split(verses)
    train_text = "\n".join(train_v) + "\n"
    calib_text = "\n".join(calib_v) + "\n"
    eval_text = "\n".join(eval_v) + "\n"
    log(f"verses: {len(verses)} -> train {len(train_v)}, calib {len(calib_v)}, eval {len(eval_v)}")

    # 2. tokenizer
    tok = train_tokenizer(train_text)
    train_ids = torch.tensor(tok.encode(train_text, add_special_tokens=False).ids)
    log(f"tokenizer: vocab {tok.get_vocab_size()}; train tokens {train_ids.numel()}")

    # 3. model
    config = LlamaConfig(**SHAPE)
    model = LlamaForCausalLM(config)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"params: {n_params}")
    ckpt = args.out.rstrip("/") + ".trained.pt"
    if args.trained:
        saved = torch.load(args.trained)
        model.load_state_dict(saved["model"])
        history, train_s = saved["history"], saved["train_seconds"]
        args.steps = saved.get("steps", history[-1][0])
    else:
        history = train(model, train_ids, args, log)
        train_s = time.time() - t_start
        os.makedirs(os.path.dirname(os.path.abspath(ckpt)), exist_ok=True)
        torch.save({"model": model.state_dict(), "history": history, "train_seconds": train_s,
                    "steps": args.steps},
                   ckpt)

    # 4. outlier transform, checked in f32 on held-out text
    g = torch.Generator().manual_seed(SEED + 2)
    channels = sorted(torch.randperm(SHAPE["hidden_size"], generator=g)[:args.k].tolist())
    probe = torch.tensor([tok.encode(eval_text[:4000]).ids[:256]])
    with torch.no_grad():
        before = model(input_ids=probe).logits
        before_bf16 = copy.deepcopy(model).to(torch.bfloat16).float()(input_ids=probe).logits
    outlier_transform(model, args.f, channels)
    with torch.no_grad():
        after = model(input_ids=probe).logits
    diff_f32 = (after - before).abs().max().item()
    log(f"outlier transform f={args.f} channels={channels}: max|logit diff| f32 {diff_f32:.3g}")

    # 5. save
    out = args.out
    tmp = out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    model.to(torch.bfloat16).save_pretrained(tmp, safe_serialization=True)
    GenerationConfig(bos_token_id=0, eos_token_id=1, do_sample=False,
                     max_new_tokens=128).save_pretrained(tmp)
    save_tokenizer(tok, tmp)
    for name, text in (("calib.txt", calib_text), ("eval.txt", eval_text)):
        with open(os.path.join(tmp, name), "w", encoding="utf-8") as fh:
            fh.write(text)

    # reload through the Auto classes, as a user would
    hf_tok = AutoTokenizer.from_pretrained(tmp)
    assert hf_tok("In the").input_ids[0] == 0, "tokenizer does not add BOS"
    stored = load_f32(tmp)
    with torch.no_grad():
        stored_logits = stored(input_ids=probe).logits
    diff_bf16 = (stored_logits - before_bf16).abs().max().item()
    log(f"stored bf16 model vs bf16 model without transform: max|logit diff| {diff_bf16:.3g}")

    eval_ids = torch.tensor(hf_tok(eval_text).input_ids)
    if args.smoke:
        eval_ids = eval_ids[:2 * EVAL_WINDOW]
    ppl, n_pred = perplexity(stored, eval_ids)
    calib_ids = hf_tok(calib_text).input_ids
    log(f"eval: {eval_ids.numel()} tokens, ppl {ppl:.3f} ({n_pred} predictions)")
    rtn_fake_quant(stored)
    ppl_rtn, _ = perplexity(stored, eval_ids)
    log(f"RTN w4 g128: ppl {ppl_rtn:.3f} (+{100 * (ppl_rtn / ppl - 1):.3f}%)")
    # What the transform is for: RTN with and without it, on the first --compare-windows
    # windows of eval.txt (a subset, to save time; the unquantized models are the same function).
    sub = eval_ids[:args.compare_windows * EVAL_WINDOW]
    ppl_sub_rtn, _ = perplexity(stored, sub)
    plain = load_f32(tmp)
    outlier_transform(plain, 1.0 / args.f, channels)
    ppl_sub, _ = perplexity(plain, sub)
    rtn_fake_quant(plain)
    ppl_plain_rtn, _ = perplexity(plain, sub)
    log(f"first {sub.numel()} eval tokens: ppl {ppl_sub:.3f}; RTN w4 g128 with transform "
        f"{ppl_sub_rtn:.3f}, without {ppl_plain_rtn:.3f}")

    # generation sample, greedy
    prompt = hf_tok("In the beginning God created the heaven and the earth.", return_tensors="pt")
    gen = load_f32(tmp).generate(**prompt, max_new_tokens=40, do_sample=False)
    sample = hf_tok.decode(gen[0], skip_special_tokens=True)
    log(f"greedy sample: {sample!r}")

    results = dict(
        verses=len(verses), train_verses=len(train_v), calib_verses=len(calib_v),
        eval_verses=len(eval_v), train_tokens=train_ids.numel(), calib_tokens=len(calib_ids),
        eval_tokens=eval_ids.numel(), params=n_params, steps=args.steps, batch=args.batch,
        seqlen=args.seqlen, seqlen_late=args.seqlen_late, late_frac=args.late_frac, lr=args.lr,
        warmup=args.warmup, final_loss=history[-1][1], loss_history=history,
        train_seconds=round(train_s), threads=args.threads, f=args.f, k=args.k,
        channels=channels, diff_f32=diff_f32, diff_bf16=diff_bf16, ppl=ppl, ppl_rtn=ppl_rtn,
        sub_tokens=sub.numel(), ppl_sub=ppl_sub, ppl_sub_rtn=ppl_sub_rtn,
        ppl_plain_rtn=ppl_plain_rtn, sample=sample, time_budget=args.time_budget,
        cpu=cpu_name(), torch=torch.__version__)
    write_card(tmp, results)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    log(json.dumps({k: v for k, v in results.items() if k != "loss_history"}))
    return 0


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def write_card(out: str, r: dict) -> None:
    from make_bundled_model_card import card   # same folder; kept apart for readability
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as fh:
        fh.write(card(r))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
