// Writes a synthetic AutoAWQ GEMM checkpoint with a real model's shapes (default: Llama-2-7B) and
// random codes/scales, for memory and speed measurements that must not live in CI.
//   awq_synth OUT_DIR [--layers L] [--hidden H] [--intermediate I] [--vocab V] [--group G]
//             [--dense-bf16 DENSE_DIR]
// --dense-bf16 also writes the same model as a dense bf16 checkpoint: every quantized linear
// dequantized by the library's `awq dequantize` path (w = s·(q − z) in f32, rounded once to bf16),
// every other tensor copied as is; so the two directories hold the same weights up to that rounding.
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
  if (argc < 2) {
    std::fprintf(stderr, "usage: awq_synth OUT_DIR [--layers L] [--hidden H] [--intermediate I] [--vocab V] [--group G]\n");
    return 2;
  }
  Shape s;
  std::string dense_dir;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--dense-bf16") {
      dense_dir = argv[i + 1];
      continue;
    }
    const int64_t v = std::stoll(argv[i + 1]);
    if (k == "--layers") s.layers = v;
    else if (k == "--hidden") s.hidden = v;
    else if (k == "--intermediate") s.inter = v;
    else if (k == "--vocab") s.vocab = v;
    else if (k == "--group") s.group = v;
  }
  try {
    const std::string out = argv[1];
    std::filesystem::create_directories(out);
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
    SafetensorsWriter w(out + "/model.safetensors", specs);
    std::vector<uint8_t> buf;
    for (const auto& t : specs) {
      buf.resize(t.nbytes());
      if (t.dtype == DType::F16) fill_scales(buf, rng);
      else fill_random(buf, rng);
      w.append(buf.data(), buf.size());
    }
    w.commit();
    write_file_atomic(out + "/config.json",
                      "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":" + std::to_string(s.hidden) +
                          ",\"intermediate_size\":" + std::to_string(s.inter) + ",\"num_hidden_layers\":" + std::to_string(s.layers) +
                          ",\"num_attention_heads\":32,\"num_key_value_heads\":32,\"vocab_size\":" + std::to_string(s.vocab) +
                          ",\"torch_dtype\":\"float16\",\"tie_word_embeddings\":false,\"quantization_config\":{\"quant_method\":\"awq\","
                          "\"zero_point\":true,\"group_size\":" + std::to_string(s.group) + ",\"bits\":4,\"version\":\"gemm\"}}\n");
    std::printf("wrote %s (%zu tensors)\n", out.c_str(), specs.size());
    if (!dense_dir.empty()) {
      ModelDir dir(out);
      auto reader = open_format(dir);
      DequantizeOptions opt;
      opt.out_dir = dense_dir;
      opt.dtype = DType::BF16;
      opt.progress = false;
      const auto r = dequantize_model(dir, *reader, opt);
      std::printf("wrote %s (dense bf16, %zu tensors, %zu shards)\n", dense_dir.c_str(), r.tensors, r.shards);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "awq_synth: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
