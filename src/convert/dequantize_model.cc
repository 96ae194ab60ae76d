#include "awq/dequantize_model.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "awq/error.h"
#include "awq/fsutil.h"
#include "awq/progress.h"
#include "awq/resources.h"
#include "awq/thread_pool.h"
#include "convert/dequantize_output.h"
#include "convert/shard_writer.h"
#include "convert/value_guard.h"

namespace fs = std::filesystem;

namespace awq {

using namespace convert_detail;

namespace {

DType default_dtype(const ModelDir& dir, const FormatReader& reader) {
  if (reader.modules().empty()) return DType::F16;
  const DType sd = reader.check(reader.modules().front()).scale_dtype;
  if (sd == DType::F16 || sd == DType::BF16) return sd;
  const auto& cfg = dir.config();
  if (cfg.contains("torch_dtype") && cfg["torch_dtype"].is_string())
    if (auto t = parse_torch_dtype(cfg["torch_dtype"].get<std::string>())) return *t;
  return DType::F16;
}

// Memory one module needs at once: its canonical form plus the chunk of output rows being written.
uint64_t dequantize_working_set(const FormatReader& reader, const ModuleInfo& info, DType dt) {
  const int64_t gs = reader.scheme().group_size;
  const int64_t groups = gs <= 0 ? 1 : (info.k + gs - 1) / gs;
  const uint64_t row_bytes = uint64_t(info.k) * dtype_size(dt);
  const uint64_t chunk = std::min(uint64_t(info.n) * row_bytes, std::max<uint64_t>(row_bytes, 8u << 20));
  return quant_linear_bytes(info.n, info.k, groups) + chunk;
}

}  // namespace

namespace convert_detail {

void write_dequantized(std::vector<OutTensor> plan, const std::string& source, nlohmann::ordered_json config,
                       const std::vector<std::string>& auxiliary, const ResourceNeeds& needs, const DequantizeOptions& opt,
                       DequantizeResult& res) {
  std::sort(plan.begin(), plan.end(), [](const OutTensor& a, const OutTensor& b) { return a.spec.name < b.spec.name; });
  for (size_t i = 1; i < plan.size(); ++i)
    if (plan[i].spec.name == plan[i - 1].spec.name)
      fail(source, plan[i].spec.name, "would be written twice (stored dense and as a quantized module)");
  OutputDir out(opt.out_dir, opt.force, {source});
  const ShardedResult sr = write_plan(out, plan, needs, "dequantize", opt.max_shard_bytes, opt.progress);
  res.shards = sr.shards;
  res.tensors = sr.tensors;
  res.bytes = sr.bytes;
  const std::string dtype = torch_dtype_name(res.dtype);
  config.erase("quantization_config");
  config["torch_dtype"] = dtype;
  if (config.contains("dtype")) config["dtype"] = dtype;  // transformers >= 4.56 spelling
  if (config.contains("text_config") && config["text_config"].is_object() && config["text_config"].contains("torch_dtype"))
    config["text_config"]["torch_dtype"] = dtype;
  write_file_atomic(out.file("config.json"), config.dump(2) + "\n");
  copy_auxiliary(source, auxiliary, out, opt.skip_auxiliary);
  out.commit();
}

}  // namespace convert_detail

DequantizeResult dequantize_model(const ModelDir& dir, const FormatReader& reader, const DequantizeOptions& opt) {
  DequantizeResult res;
  res.dtype = opt.dtype ? *opt.dtype : default_dtype(dir, reader);
  if (res.dtype != DType::F16 && res.dtype != DType::BF16 && res.dtype != DType::F32)
    throw Error("output dtype must be f16, bf16 or f32");

  // Plan the output tensors in name order: every module becomes "<module>.weight" [N, K].
  std::set<std::string> consumed;
  std::vector<OutTensor> plan;
  for (const auto& m : reader.modules())
    for (const auto& t : reader.module_tensors(m)) consumed.insert(t);
  const DType dt = res.dtype;
  auto policy = std::make_shared<NonfinitePolicy>();
  policy->file = dir.path();
  policy->allow = opt.allow_nonfinite;
  if (!opt.nonfinite_remedy.empty()) policy->remedy = opt.nonfinite_remedy;
  auto casts = std::make_shared<std::vector<CastStats>>();
  ResourceNeeds needs;
  needs.out_dir = opt.out_dir;
  for (const auto& m : reader.modules()) {
    const ModuleInfo info = reader.check(m);
    if (const uint64_t ws = dequantize_working_set(reader, info, dt); ws > needs.tensor_bytes) {
      needs.tensor_bytes = ws;
      needs.tensor = m;
    }
    plan.push_back({{reader.dense_name(m), dt, {info.n, info.k}}, [&reader, &dir, m, dt, policy](SafetensorsWriter& w) {
                      const QuantLinear q = reader.read(m);
                      const bool clean = scan_nonfinite(q).empty();
                      guard_module_nonfinite(*policy, reader, m, q);
                      if (!clean) guard_module_range(dir.path(), m, q, dt);  // NaN carried: its Inf cannot tell overflow apart
                      std::vector<uint8_t> buf;
                      const size_t row_bytes = size_t(q.k) * dtype_size(dt);
                      const int64_t rows_per_chunk = std::max<int64_t>(1, int64_t((8u << 20) / row_bytes));
                      ThreadPool& pool = default_pool();
                      for (int64_t r = 0; r < q.n; r += rows_per_chunk) {
                        const int64_t r1 = std::min(q.n, r + rows_per_chunk);
                        buf.resize(size_t(r1 - r) * row_bytes);
                        // Rows are independent: the same bits at any thread count.
                        const int64_t tasks = std::min<int64_t>(r1 - r, 4 * pool.size());
                        std::vector<uint8_t> inf(size_t(tasks), 0);
                        pool.run(tasks, [&](int64_t t, int) {
                          const int64_t a = r + (r1 - r) * t / tasks, b = r + (r1 - r) * (t + 1) / tasks;
                          uint8_t* dst = buf.data() + size_t(a - r) * row_bytes;
                          dequantize_rows_ref(q, dt, a, b, dst);
                          inf[size_t(t)] = any_nonfinite(dst, dt, size_t(b - a) * size_t(q.k));
                        });
                        // Finite inputs that wrote Inf: the dtype cannot hold the weights (named, with the dtypes that can).
                        if (clean && std::count(inf.begin(), inf.end(), 1)) {
                          guard_module_range(dir.path(), m, q, dt);
                          fail(dir.path(), m, "dequantizes to Inf (s·(q − z) overflows f32); refusing to write it");
                        }
                        w.append(buf.data(), buf.size());
                      }
                    }});
    ++res.modules;
  }
  for (const TensorView* t : dir.tensors())
    if (!consumed.count(t->name)) {
      const TensorView* src = t;
      for (const TensorView* o : opt.dense_overrides)
        if (o->name == t->name) src = o;
      plan.push_back(guarded_copy(*src, reader.dense_tensor_name(t->name), dt, policy, casts));
    }
  write_dequantized(std::move(plan), dir.path(), nlohmann::ordered_json::parse(dir.config().dump()), dir.auxiliary_files(), needs,
                    opt, res);
  for (const auto& c : *casts) res.casts.push_back({c.from, c.to, c.tensors, c.max_rel, c.worst_tensor});
  res.warnings = policy->warnings;
  return res;
}

}  // namespace awq
