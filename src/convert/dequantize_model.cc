#include "awq/dequantize_model.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "awq/error.h"
#include "awq/fsutil.h"
#include "awq/progress.h"

namespace fs = std::filesystem;

namespace awq {

std::string torch_dtype_name(DType t) {
  switch (t) {
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    case DType::F32: return "float32";
    default: return std::string(dtype_name(t));
  }
}

std::optional<DType> parse_torch_dtype(const std::string& s) {
  if (s == "float16" || s == "half") return DType::F16;
  if (s == "bfloat16") return DType::BF16;
  if (s == "float32" || s == "float") return DType::F32;
  return std::nullopt;
}

namespace {

std::string fmt_shard_name(size_t i, size_t n) {
  char b[64];
  std::snprintf(b, sizeof b, "model-%05zu-of-%05zu.safetensors", i, n);
  return b;
}

// One output tensor: either a stored tensor copied unchanged or a quantized module to dequantize.
struct OutTensor {
  std::string name;
  const TensorView* copy = nullptr;  // passthrough source
  std::string module;                // quantized module (when copy == nullptr)
  TensorSpec spec;
};

DType default_dtype(const ModelDir& dir, const FormatReader& reader) {
  if (reader.modules().empty()) return DType::F16;
  const DType sd = reader.check(reader.modules().front()).scale_dtype;
  if (sd == DType::F16 || sd == DType::BF16) return sd;
  const auto& cfg = dir.config();
  if (cfg.contains("torch_dtype") && cfg["torch_dtype"].is_string())
    if (auto t = parse_torch_dtype(cfg["torch_dtype"].get<std::string>())) return *t;
  return DType::F16;
}

}  // namespace

DequantizeResult dequantize_model(const ModelDir& dir, const FormatReader& reader, const DequantizeOptions& opt) {
  DequantizeResult res;
  res.dtype = opt.dtype ? *opt.dtype : default_dtype(dir, reader);
  if (res.dtype != DType::F16 && res.dtype != DType::BF16 && res.dtype != DType::F32)
    throw Error("output dtype must be f16, bf16 or f32");

  // Plan the output tensors in name order: every module becomes "<module>.weight" [N, K].
  std::set<std::string> consumed;
  std::vector<OutTensor> plan;
  for (const auto& m : reader.modules()) {
    for (const auto& t : reader.module_tensors(m)) consumed.insert(t);
  }
  for (const auto& m : reader.modules()) {
    const ModuleInfo info = reader.check(m);
    OutTensor o;
    o.name = reader.dense_name(m);
    o.module = m;
    o.spec = {o.name, res.dtype, {info.n, info.k}};
    plan.push_back(std::move(o));
  }
  for (const TensorView* t : dir.tensors()) {
    if (consumed.count(t->name)) continue;
    OutTensor o;
    o.name = reader.dense_tensor_name(t->name);
    o.copy = t;
    o.spec = {o.name, t->dtype, t->shape};
    plan.push_back(std::move(o));
  }
  std::sort(plan.begin(), plan.end(), [](const OutTensor& a, const OutTensor& b) { return a.name < b.name; });
  uint64_t total = 0;
  for (const auto& o : plan) total += o.spec.nbytes();
  for (size_t i = 1; i < plan.size(); ++i)
    if (plan[i].name == plan[i - 1].name) fail(dir.path(), plan[i].name, "would be written twice (stored dense and as a quantized module)");

  // Greedy sharding in order; a tensor larger than the limit gets a shard of its own.
  std::vector<std::vector<size_t>> shards(1);
  uint64_t cur = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    const uint64_t b = plan[i].spec.nbytes();
    if (!shards.back().empty() && cur + b > opt.max_shard_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(i);
    cur += b;
  }

  OutputDir out(opt.out_dir, opt.force);
  Progress bar("dequantize", total, opt.progress);
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  std::vector<uint8_t> buf;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string fname = shards.size() == 1 ? "model.safetensors"
        : fmt_shard_name(s + 1, shards.size());
    std::vector<TensorSpec> specs;
    for (size_t i : shards[s]) specs.push_back(plan[i].spec);
    SafetensorsWriter w(out.file(fname), specs);
    for (size_t i : shards[s]) {
      const OutTensor& o = plan[i];
      if (o.copy) {
        w.append(o.copy->data, o.copy->nbytes);
      } else {
        const QuantLinear q = reader.read(o.module);
        const int64_t rows_per_chunk = std::max<int64_t>(1, int64_t((8u << 20) / (size_t(q.k) * dtype_size(res.dtype))));
        for (int64_t r = 0; r < q.n; r += rows_per_chunk) {
          const int64_t r1 = std::min(q.n, r + rows_per_chunk);
          buf.resize(size_t(r1 - r) * size_t(q.k) * dtype_size(res.dtype));
          dequantize_rows_ref(q, res.dtype, r, r1, buf.data());
          w.append(buf.data(), buf.size());
        }
        ++res.modules;
      }
      weight_map[o.name] = fname;
      bar.advance(o.spec.nbytes());
      ++res.tensors;
    }
    w.commit();
  }
  bar.finish();
  res.shards = shards.size();
  res.bytes = total;
  if (shards.size() > 1) {
    nlohmann::ordered_json idx;
    idx["metadata"] = {{"total_size", total}};
    idx["weight_map"] = weight_map;
    write_file_atomic(out.file("model.safetensors.index.json"), idx.dump(2) + "\n");
  }
  nlohmann::ordered_json cfg = nlohmann::ordered_json::parse(dir.config().dump());
  cfg.erase("quantization_config");
  cfg["torch_dtype"] = torch_dtype_name(res.dtype);
  write_file_atomic(out.file("config.json"), cfg.dump(2) + "\n");
  for (const auto& f : dir.auxiliary_files()) copy_file_atomic((fs::path(dir.path()) / f).string(), out.file(f));
  out.commit();
  return res;
}

}  // namespace awq
