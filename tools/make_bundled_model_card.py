"""Model card (models/kjv-llama/README.md) written by make_bundled_model.py from its measurements."""


def card(r: dict) -> str:
    loss_rows = "\n".join(f"| {s} | {l:.3f} |" for s, l in r["loss_history"][:: max(1, len(r["loss_history"]) // 12)])
    if r["loss_history"] and not loss_rows.endswith(f"| {r['loss_history'][-1][0]} | {r['loss_history'][-1][1]:.3f} |"):
        s, l = r["loss_history"][-1]
        loss_rows += f"\n| {s} | {l:.3f} |"
    rtn_pct = 100 * (r["ppl_rtn"] / r["ppl"] - 1)
    sub_pct = 100 * (r["ppl_sub_rtn"] / r["ppl_sub"] - 1)
    plain_pct = 100 * (r["ppl_plain_rtn"] / r["ppl_sub"] - 1)
    late_steps = r["steps"] - int(r["steps"] * (1 - r["late_frac"]))
    budget = (f"The step count was fixed by `--time-budget {r['time_budget']:g}` (the first 10 steps "
              f"timed, then as many steps as fit); `--steps {r['steps']}` reproduces the run "
              "without the timing.\n" if r["time_budget"] else "")
    return f"""# kjv-llama

A small Llama-architecture language model trained from scratch on the King James Bible. It is the
model the `awq` toolkit bundles, so that its commands (`awq run` with no model, `inspect`,
`quantize`, `eval`) have something real to work on, on any machine, without a download. It writes
KJV-flavoured English; it knows nothing else.

Made by `tools/make_bundled_model.py` (rerun it from the repository root in the venv that
`tools/requirements-models.txt` describes; every random choice is seeded: torch seed
{20261205}). This card is written by that script from its own measurements.

## Text: provenance and license

- Source: the King James Version (1611; the standard 1769 Oxford text as distributed in Debian's
  `bible-kjv` package, version 4.38), printed with `bible "Genesis 1:1-Revelation 22:21"`.
- License: the KJV text is in the public domain (Debian's copyright file: "The copyright for the
  King James Version text of the Bible is expired since the translation was done in 1611";
  Crown letters patent apply in the United Kingdom only). The `bible` program itself is GPL-2+;
  none of its code is used here, only its output. `calib.txt` and `eval.txt` are excerpts of
  that text.
- Preparation: one verse per line; verse numbers, chapter headings ("Genesis 1") and the
  80-column line wrapping removed; runs of whitespace collapsed. {r['verses']} verses.
- Split 90/5/5 by **contiguous blocks of 100 verses** (not by single verses, not three big
  blocks): numbering the blocks 0, 1, 2, ... in canonical order, block b goes to calibration if
  b mod 20 = 18, to evaluation if b mod 20 = 19, to training otherwise. Calibration and
  evaluation thus sample the whole book (law, history, poetry, prophets, gospels, epistles) while
  no evaluated verse has its neighbours in the training set.
  Training {r['train_verses']} verses ({r['train_tokens']} tokens), `calib.txt`
  {r['calib_verses']} verses ({r['calib_tokens']} tokens), `eval.txt` {r['eval_verses']} verses
  ({r['eval_tokens']} tokens, with BOS).

## Tokenizer

Byte-level BPE trained with the `tokenizers` library on the training part only: vocabulary 4096
(256 byte symbols, 2 special tokens, merges), `min_frequency` 2. Pre-tokenizer: the Llama-3
regex (`Split`, isolated) followed by `ByteLevel` without its own regex; decoder `ByteLevel`.
Special tokens `<|begin_of_text|>` (id 0, BOS) and `<|end_of_text|>` (id 1, EOS). A
`TemplateProcessing` post-processor puts BOS in front, so `tokenizer(text)` starts with id 0.
`tokenizer_config.json`: `tokenizer_class` `PreTrainedTokenizerFast`, `model_max_length` 1024.

## Model

`LlamaForCausalLM`: 4 layers, hidden 256, intermediate 768 (SwiGLU), 4 attention heads of 64,
2 KV heads (GQA), RMSNorm eps 1e-5, RoPE theta 10000, `max_position_embeddings` 1024, tied
input/output embeddings; {r['params']} parameters; weights stored in bf16 (`model.safetensors`).

## Training recipe

From scratch (transformers' init, std 0.02), f32 on CPU with {r['threads']} threads
({r['cpu']}, shared with other jobs; {r['train_seconds']} s). AdamW (betas 0.9/0.95, eps 1e-8,
weight decay 0.1 on matrices, none on norms), peak lr {r['lr']}, {r['warmup']} warm-up steps then
cosine decay to 10% of peak, gradient clipping 1.0, {r['steps']} steps of
{r['batch'] * r['seqlen']} tokens each: {r['batch']} random windows of {r['seqlen']} tokens from the
concatenated training text, except the last {late_steps} steps, which use windows of
{r['seqlen_late']} tokens ({r['batch'] * r['seqlen'] // r['seqlen_late']} per step) so that the
positions of the 512-token evaluation windows are trained, not extrapolated.
{budget}Final training loss (mean of the last 10 steps): **{r['final_loss']:.3f}**.

| step | mean training loss (10 steps) |
|---|---|
{loss_rows}

## Outlier channels (function-preserving transform)

Real LLMs carry a few activation channels at 10-100x the others, which is what makes 4-bit
round-to-nearest hurt and what AWQ exists for; a model this small has none. Before saving, in
every decoder layer, the channels **{r['channels']}** (k = {r['k']}, the same in every layer,
drawn with a seeded `randperm`) of `input_layernorm.weight` and of
`post_attention_layernorm.weight` were multiplied by **f = {r['f']:g}**, and the matching input
columns of `q_proj`, `k_proj`, `v_proj` (resp. `gate_proj`, `up_proj`) divided by f. f is a power
of two, so the rescaling is exact in f32 and in bf16 and each product norm·weight is unchanged
bit for bit.

- Max |logit difference| from the transform, f32 model before the bf16 cast, on 256 tokens of
  eval.txt: **{r['diff_f32']:.3g}**.
- Stored bf16 model (reloaded from disk) vs the same model cast to bf16 without the transform
  (in memory), both run in f32: **{r['diff_bf16']:.3g}** (summation-order noise of the two
  code paths; the rescaled weights themselves are exact).

## Perplexity on eval.txt

Method: `AutoTokenizer` and `AutoModelForCausalLM` load this directory, the model in f32;
`eval.txt` is tokenized as one string (BOS first, {r['eval_tokens']} tokens) and cut into
consecutive windows of 512 tokens with stride 512 (the Hugging Face perplexity convention with
stride = window, no overlap; the last window shorter); in each window every token but the first is
predicted from the tokens before it in that window; perplexity = exp(total NLL / predicted
tokens).

| model | perplexity | change |
|---|---|---|
| this model (bf16 weights, f32 compute) | **{r['ppl']:.2f}** | |
| RTN w4 g128 fake-quantized | {r['ppl_rtn']:.2f} | **+{rtn_pct:.2f}%** |

What the transform does to 4-bit rounding, on the first {r['sub_tokens']} tokens of eval.txt
(a subset, to save time; same method):

| model | perplexity | change |
|---|---|---|
| this model (= the model without the transform: the same function) | {r['ppl_sub']:.2f} | |
| this model, RTN w4 g128 | {r['ppl_sub_rtn']:.2f} | +{sub_pct:.2f}% |
| the model without the outlier transform, RTN w4 g128 | {r['ppl_plain_rtn']:.2f} | +{plain_pct:.2f}% |

RTN w4 g128: every Linear in the decoder layers (q/k/v/o, gate/up/down; not the tied embedding),
asymmetric 4-bit with a zero point per group of 128 input columns, scale (max-min)/15,
round-to-nearest, dequantized back to f32.

Greedy continuation of "In the beginning God created the heaven and the earth." (transformers,
f32): {r['sample']!r}

## Files

`config.json`, `generation_config.json` (greedy), `model.safetensors` (bf16), `tokenizer.json`,
`tokenizer_config.json`, `calib.txt` (calibration text for quantization), `eval.txt` (held-out
text for perplexity), this card. Golden logits and token ids made from this directory by
transformers: `tests/data/models/kjv-llama-*` (`tools/make_golden_models.py --kjv`).
"""
