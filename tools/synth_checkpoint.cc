// Writes a synthetic AutoAWQ GEMM checkpoint with a real model's shapes (default: Llama-2-7B) and
// random codes/scales, for memory and speed measurements that must not live in CI.
//   awq_synth OUT_DIR [--layers L] [--hidden H] [--intermediate I] [--vocab V] [--group G]
//             [--dense-bf16 DENSE_DIR] [--force]      (--help: usage; usage errors exit 2)
// OUT_DIR (and DENSE_DIR) are written as awq's commands write: complete or not at all, an existing
// non-empty directory refused without --force.
// --dense-bf16 also writes the same model as a dense bf16 checkpoint: every quantized linear
// dequantized by the library's `awq dequantize` path (w = s·(q − z) in f32, rounded once to bf16),
// every other tensor copied as is; so the two directories hold the same weights up to that rounding.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "awq/dequantize_model.h"
#include "awq/dtype.h"
#include "awq/formats.h"
#include "awq/model_dir.h"
#include "awq/error.h"
#include "awq/fsutil.h"
#include "awq/safetensors.h"

using namespace awq;

namespace {
struct Shape { int64_t layers = 32, hidden = 4096, inter = 11008, vocab = 32000, group = 128; };

void fill_random(std::vector<uint8_t>& buf, std::mt19937_64& rng) {
  for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(buf.data() + i, &v, 8);
  }
}

void fill_scales(std::vector<uint8_t>& buf, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> d(0.001f, 0.02f);
  for (size_t i = 0; i + 2 <= buf.size(); i += 2) {
    const uint16_t h = f32_to_f16(d(rng));
    std::memcpy(buf.data() + i, &h, 2);
  }
}
}  // namespace

int main(int argc, char** argv) {
  Shape s;
  std::string out, dense_dir;
  bool force = false;
  CLI::App app{"Writes a synthetic AutoAWQ GEMM checkpoint (random codes and scales) with a real model's shapes "
               "(default: Llama-2-7B), for memory and speed measurements.",
               "awq_synth"};
  app.add_option("OUT_DIR", out, "the checkpoint to write (refused when it exists and is not empty, unless --force)")->required();
  app.add_option("--layers", s.layers, "decoder layers (default 32)")->check(CLI::PositiveNumber);
  app.add_option("--hidden", s.hidden, "hidden size, a multiple of 32 heads and of the group (default 4096)")->check(CLI::PositiveNumber);
  app.add_option("--intermediate", s.inter, "MLP size, a multiple of the group and of 8 (default 11008)")->check(CLI::PositiveNumber);
  app.add_option("--vocab", s.vocab, "vocabulary size (default 32000)")->check(CLI::PositiveNumber);
  app.add_option("--group", s.group, "quantization group size (default 128)")->check(CLI::PositiveNumber);
  app.add_option("--dense-bf16", dense_dir, "also write the same weights as a dense bf16 checkpoint here");
  app.add_flag("--force", force, "replace an existing OUT_DIR / DENSE_DIR once the new one is complete");
  try {
    app.parse(argc, argv);
    if (s.hidden % 32 != 0 || s.hidden % s.group != 0 || s.inter % s.group != 0 || s.inter % 8 != 0)
      throw CLI::ValidationError("shape", "--hidden must be a multiple of 32 and of --group, --intermediate of --group and of 8");
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help: 0; any usage error: 2, as awq itself
  }
  try {
    std::error_code ec;
    if (!dense_dir.empty() && !force && std::filesystem::is_directory(dense_dir, ec) && !std::filesystem::is_empty(dense_dir, ec))
      throw Error(dense_dir + ": exists and is not empty (pass --force to replace it)");  // before writing gigabytes
    OutputDir dir_out(out, force, {});
    const std::string tmp = dir_out.tmp().string();
    std::mt19937_64 rng(1234);
    std::vector<TensorSpec> specs;
    specs.push_back({"model.embed_tokens.weight", DType::F16, {s.vocab, s.hidden}});
    specs.push_back({"lm_head.weight", DType::F16, {s.vocab, s.hidden}});
    specs.push_back({"model.norm.weight", DType::F16, {s.hidden}});
    const std::pair<const char*, std::pair<int64_t, int64_t>> mods[] = {
        {"self_attn.q_proj", {s.hidden, s.hidden}}, {"self_attn.k_proj", {s.hidden, s.hidden}},
        {"self_attn.v_proj", {s.hidden, s.hidden}}, {"self_attn.o_proj", {s.hidden, s.hidden}},
        {"mlp.gate_proj", {s.inter, s.hidden}},     {"mlp.up_proj", {s.inter, s.hidden}},
        {"mlp.down_proj", {s.hidden, s.inter}}};
    for (int64_t l = 0; l < s.layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      specs.push_back({p + "input_layernorm.weight", DType::F16, {s.hidden}});
      specs.push_back({p + "post_attention_layernorm.weight", DType::F16, {s.hidden}});
      for (const auto& [name, nk] : mods) {
        const auto [n, k] = nk;
        specs.push_back({p + name + ".qweight", DType::I32, {k, n / 8}});
        specs.push_back({p + name + ".qzeros", DType::I32, {k / s.group, n / 8}});
        specs.push_back({p + name + ".scales", DType::F16, {k / s.group, n}});
      }
    }
    SafetensorsWriter w(tmp + "/model.safetensors", specs);
    std::vector<uint8_t> buf;
    for (const auto& t : specs) {
      buf.resize(t.nbytes());
      if (t.dtype == DType::F16) fill_scales(buf, rng);
      else fill_random(buf, rng);
      w.append(buf.data(), buf.size());
    }
    w.commit();
    write_file_atomic(tmp + "/config.json",
                      "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":" + std::to_string(s.hidden) +
                          ",\"intermediate_size\":" + std::to_string(s.inter) + ",\"num_hidden_layers\":" + std::to_string(s.layers) +
                          ",\"num_attention_heads\":32,\"num_key_value_heads\":32,\"vocab_size\":" + std::to_string(s.vocab) +
                          ",\"torch_dtype\":\"float16\",\"tie_word_embeddings\":false,\"quantization_config\":{\"quant_method\":\"awq\","
                          "\"zero_point\":true,\"group_size\":" + std::to_string(s.group) + ",\"bits\":4,\"version\":\"gemm\"}}\n");
    dir_out.commit();
    std::printf("wrote %s (%zu tensors)\n", out.c_str(), specs.size());
    if (!dense_dir.empty()) {
      ModelDir dir(out);
      auto reader = open_format(dir);
      DequantizeOptions opt;
      opt.out_dir = dense_dir;
      opt.dtype = DType::BF16;
      opt.progress = false;
      opt.force = force;
      const auto r = dequantize_model(dir, *reader, opt);
      std::printf("wrote %s (dense bf16, %zu tensors, %zu shards)\n", dense_dir.c_str(), r.tensors, r.shards);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "awq_synth: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
