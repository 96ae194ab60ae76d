// awq run [MODEL] -p PROMPT: generates text with the runtime, streaming it as it is decoded, and
// ends with the prompt and generation speeds (stderr). --logits-out writes the prompt's logits.
// MODEL may be a GGUF file: how its weights were loaded (which block types run on the 4-bit kernels,
// which were dequantized to dense) is printed to stderr first.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "awq/error.h"
#include "awq/fsutil.h"
#include "awq/model.h"
#include "awq/safetensors.h"
#include "awq/tokenizer.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/layer_cache_args.h"

namespace awq::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Length of the longest prefix of s that does not end inside a UTF-8 sequence or with U+FFFD
// (which byte-level decoders emit for bytes whose sequence is still incomplete).
size_t printable_prefix(const std::string& s) {
  size_t n = s.size();
  if (n >= 3 && s.compare(n - 3, 3, "\xEF\xBF\xBD") == 0) return n - 3;
  // Step back over at most 3 continuation bytes to the lead byte of the last sequence.
  size_t i = n, cont = 0;
  while (i > 0 && cont < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) --i, ++cont;
  if (i == 0) return n;
  const unsigned char lead = static_cast<unsigned char>(s[i - 1]);
  const size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
  return cont < need ? i - 1 : n;
}

// Prints the generated text as it grows: the decoding of prompt + generated ids minus the
// decoding of the prompt (so decoders that treat a sequence's start specially stay right).
class Streamer {
 public:
  Streamer(const Tokenizer& tok, const std::vector<int32_t>& prompt) : tok_(tok), ids_(prompt), prompt_len_(prompt.size()) {
    prefix_ = tok_.decode(ids_, true);
  }
  void push(int32_t id) {
    ids_.push_back(id);
    const std::string all = tok_.decode(ids_, true);
    const std::string gen = all.compare(0, prefix_.size(), prefix_) == 0
                                ? all.substr(prefix_.size())
                                : tok_.decode(std::vector<int32_t>(ids_.begin() + std::ptrdiff_t(prompt_len_), ids_.end()), true);
    const size_t upto = printable_prefix(gen);
    if (upto > printed_) {
      std::fwrite(gen.data() + printed_, 1, upto - printed_, stdout);
      std::fflush(stdout);
      printed_ = upto;
    }
    last_ = gen;
  }
  void finish() {  // whatever was held back (an incomplete sequence at the very end)
    if (last_.size() > printed_) std::fwrite(last_.data() + printed_, 1, last_.size() - printed_, stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }

 private:
  const Tokenizer& tok_;
  std::vector<int32_t> ids_;
  size_t prompt_len_;
  std::string prefix_, last_;
  size_t printed_ = 0;
};

// NaN/Inf logits (a NaN/Inf scale or weight in the model) are refused, not written or sampled from.
void refuse_nonfinite_logits(const std::vector<float>& logits, int64_t vocab, int64_t first_position, const std::string& dir) {
  for (size_t i = 0; i < logits.size(); ++i)
    if (!std::isfinite(logits[i]))
      throw Error(dir + ": the model's logits at position " + std::to_string(first_position + int64_t(i) / vocab) + " (token id " +
                  std::to_string(int64_t(i) % vocab) + ") are " + (std::isnan(logits[i]) ? "NaN" : "Inf") +
                  "; nothing is written (`awq check " + dir + "` names the NaN/Inf tensor)");
}

void write_logits(const std::string& path, const std::vector<float>& logits, int64_t rows, int64_t vocab, bool replace) {
  SafetensorsWriter w(path, {{"logits", DType::F32, {rows, vocab}}});
  w.set_replace(replace);
  w.append(logits.data(), logits.size() * sizeof(float));
  w.commit();
}

struct Args : ModelRunOptions {
  std::string prompt, logits_out;
  int64_t n = 128;
  float temperature = 0, top_p = 1;
  int64_t top_k = 0;
  uint64_t seed = 0;
  LayerCacheArgs cache;
  bool force = false;
};

int run(const Args& a) {
  const std::string dir = resolve_model_dir(a.model);
  const SamplerOptions so{a.temperature, a.top_k, a.top_p, a.seed};
  Sampler sampler(so);  // validates the options before the model loads
  if (a.n < 0) throw Error("-n must be >= 0");
  // The logits file is never a file of the model (or the key), nor an existing file without --force.
  if (!a.logits_out.empty()) {
    std::vector<std::string> inputs = key_file_inputs();
    inputs.push_back(dir);
    check_output_file(a.logits_out, a.force, inputs, "--logits-out");
  }
  auto tok = load_tokenizer(dir);
  const std::vector<int32_t> ids = tok->encode(a.prompt);
  ModelOptions mo;
  mo.threads = a.threads.empty() ? 0 : a.threads[0];
  mo.path = run_path(a);
  mo.kv_cache = run_kv_cache(a);
  apply_layer_cache(a.cache, mo);
  auto model = Model::load(dir, mo);
  for (const std::string& note : model->load_notes()) std::fprintf(stderr, "%s: %s\n", dir.c_str(), note.c_str());
  const ModelConfig& cfg = model->config();
  const int64_t t = int64_t(ids.size());
  if (t == 0) throw Error("the prompt encodes to no tokens");
  if (t > cfg.max_positions)
    throw Error("the prompt is " + std::to_string(t) + " tokens, longer than the model's context of " +
                std::to_string(cfg.max_positions) + " (max_position_embeddings)");
  const int64_t n = std::min(a.n, cfg.max_positions - t);
  KvCache cache = model->new_cache(1, t + std::max<int64_t>(n, 1));
  const std::vector<int32_t> eos = tok->eos_ids();
  const int64_t sampled_vocab = std::min<int64_t>(cfg.vocab, int64_t(tok->vocab_size()));

  std::fwrite(a.prompt.data(), 1, a.prompt.size(), stdout);
  std::fflush(stdout);
  std::vector<float> logits;
  const auto t0 = Clock::now();
  model->forward(cache, {ids}, !a.logits_out.empty(), logits);
  const double prefill_s = std::chrono::duration<double>(Clock::now() - t0).count();
  refuse_nonfinite_logits(logits, cfg.vocab, 0, dir);
  if (!a.logits_out.empty()) {
    write_logits(a.logits_out, logits, t, cfg.vocab, a.force);
    logits.erase(logits.begin(), logits.end() - std::ptrdiff_t(cfg.vocab));  // keep the last position
  }
  Streamer out(*tok, ids);
  int64_t generated = 0;
  const auto t1 = Clock::now();
  for (int64_t i = 0; i < n; ++i) {
    // Only ids the tokenizer knows (a model's vocabulary may be padded beyond them).
    const int32_t next = sampler.sample(std::span<const float>(logits.data(), size_t(sampled_vocab)));
    if (std::find(eos.begin(), eos.end(), next) != eos.end()) break;
    ++generated;
    out.push(next);
    if (i + 1 < n) {
      model->forward(cache, {{next}}, false, logits);
      refuse_nonfinite_logits(logits, cfg.vocab, t + i + 1, dir);
    }
  }
  const double gen_s = std::chrono::duration<double>(Clock::now() - t1).count();
  out.finish();
  std::fprintf(stderr, "prompt: %lld tokens, %.2f tokens/s; generation: %lld tokens, %.2f tokens/s (%d threads)\n",
               (long long)t, double(t) / prefill_s, (long long)generated,
               generated > 0 ? double(generated) / gen_s : 0.0, model->threads());
  return 0;
}

}  // namespace

Action add_run(CLI::App& app) {
  auto* sub = app.add_subcommand("run", "Generate text from a prompt (no MODEL: the bundled model)");
  auto a = std::make_shared<Args>();
  add_model_run_options(sub, *a, false);
  sub->add_option("-p,--prompt", a->prompt, "the prompt text")->required();
  sub->add_option("-n", a->n, "tokens to generate at most (default 128; stops early at an end-of-sequence token)");
  sub->add_option("--temperature", a->temperature, "0 = greedy (default); > 0 samples");
  sub->add_option("--top-k", a->top_k, "sample among the K most likely tokens (0 = all, default)");
  sub->add_option("--top-p", a->top_p, "sample among the most likely tokens holding probability P (default 1)");
  sub->add_option("--seed", a->seed, "random seed for sampling, 0 to 2^64-1 (default 0)")->check(uint64_arg());
  add_layer_cache_options(sub, a->cache);
  sub->add_option("--logits-out", a->logits_out,
                  "write the prompt's logits, f32 [prompt tokens, vocab], to this safetensors file (an existing file only with --force)")
      ->check(file_name_arg());
  sub->add_flag("--force", a->force, "let --logits-out replace an existing file (once the new one is complete)");
  return [a]() { return run(*a); };
}

}  // namespace awq::cli
