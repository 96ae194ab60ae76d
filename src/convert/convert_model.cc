// `awq convert` (see include/awq/convert.h): plan every output tensor (modules repacked, the rest
// copied), refuse what the target cannot hold, stream the shards, then write the target's config
// as its own tool does.
#include "awq/convert.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "awq/dequantize_model.h"
#include "awq/error.h"
#include "awq/fsutil.h"
#include "awq/model_dir.h"
#include "awq/resources.h"
#include "convert/pack.h"
#include "convert/shard_writer.h"
#include "convert/value_guard.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace awq {
using namespace convert_detail;

namespace {

TargetSpec parse_target(const ConvertOptions& opt, const QuantScheme& src) {
  TargetSpec t;
  if (opt.to == "autoawq-gemm") t.target = Target::kGemm;
  else if (opt.to == "autoawq-gemv") t.target = Target::kGemv;
  else if (opt.to == "autoawq-gemv-fast") t.target = Target::kGemvFast;
  else if (opt.to == "gptq") t.target = Target::kGptq;
  else if (opt.to == "compressed-tensors") t.target = Target::kCompressedTensors;
  else if (opt.to == "modelopt") t.target = Target::kModelOpt;
  else throw Error("--to " + opt.to + ": unknown target (known: autoawq-gemm, autoawq-gemv, autoawq-gemv-fast, compressed-tensors, gptq, modelopt, dense, gguf)");
  if (opt.gptq_format != "v1" && opt.gptq_format != "v2") throw Error("--gptq-format must be v1 or v2, not \"" + opt.gptq_format + "\"");
  t.gptq_v2 = opt.gptq_format == "v2";
  t.symmetric = !src.zero_point;
  return t;
}

// True when every zero point of every module is 2^(bits-1): a symmetric quantization stored with
// explicit zeros (AutoAWQ layouts cannot say "symmetric"), so symmetric-capable targets get it back.
bool all_zeros_mid(const FormatReader& r) {
  for (const auto& m : r.modules()) {
    const QuantLinear q = to_integer_zeros(r.read(m));
    for (int32_t z : q.zeros)
      if (z != 1 << (q.bits - 1)) return false;
  }
  return true;
}

RequantMode requant_mode(const TargetSpec& t, const QuantScheme& src) {
  if (t.target == Target::kModelOpt) return RequantMode::kSymmetric7;
  if (t.symmetric && (t.target == Target::kGptq || t.target == Target::kCompressedTensors)) return RequantMode::kSymmetric;
  if (t.target == Target::kGptq && !t.gptq_v2) return RequantMode::kNoZeroZero;
  return RequantMode::kAsymmetric;
}

// ModelOpt stores scales in F32; other layouts store them in the model dtype (config torch_dtype,
// F16 or BF16). Scales that are all exactly values of that dtype (e.g. they came from such a
// checkpoint) go back to it, losslessly; otherwise they stay F32.
DType model_dtype(const ModelDir& dir) {
  const auto& c = dir.config();
  if (c.contains("torch_dtype") && c["torch_dtype"].is_string())
    if (auto t = parse_torch_dtype(c["torch_dtype"].get<std::string>()); t && (*t == DType::F16 || *t == DType::BF16)) return *t;
  return DType::F16;
}

bool scales_fit(const QuantLinear& q, DType t) {
  uint8_t b[4];
  for (float v : q.scales) {
    store_float(b, t, 0, v);
    if (load_float(b, t, 0) != v) return false;
  }
  return true;
}

// Position of a dtype in safetensors' Rust Dtype enum (its derived order).
int st_dtype_rank(DType t) {
  switch (t) {
    case DType::BOOL: return 0;
    case DType::U8: return 4;
    case DType::I8: return 5;
    case DType::F8_E5M2: return 6;
    case DType::F8_E4M3: return 7;
    case DType::F8_E8M0: return 8;
    case DType::I16: return 9;
    case DType::U16: return 10;
    case DType::F16: return 11;
    case DType::BF16: return 12;
    case DType::I32: return 13;
    case DType::U32: return 14;
    case DType::F32: return 15;
    case DType::F64: return 16;
    case DType::I64: return 17;
    case DType::U64: return 18;
    default: return 1;
  }
}

// Packed tensors waiting to be written. Files are laid out dtype first (as the safetensors writer
// does), so a module's small tensors (scales, F16) come long after its packed weights (I32). They
// wait here, up to a fixed budget (so memory stays bounded: O(one module) + kBudget), instead of
// the module being read and packed again; past the budget it is packed again (identically).
class PendingTensors {
 public:
  static constexpr size_t kBudget = size_t(256) << 20;
  // Appends tensor i of `module`, from the cache or from compute() (all the module's tensors).
  void write(const std::string& module, size_t i, SafetensorsWriter& w, const std::function<std::vector<std::string>()>& compute) {
    const auto key = std::make_pair(module, i);
    auto it = pending_.find(key);
    if (it != pending_.end()) {
      w.append(it->second.data(), it->second.size());
      bytes_ -= it->second.size();
      pending_.erase(it);
    } else {
      std::vector<std::string> bufs = compute();
      w.append(bufs[i].data(), bufs[i].size());
      for (size_t j = 0; j < bufs.size(); ++j) {
        if (j == i || done_.count({module, j}) || bytes_ + bufs[j].size() > kBudget) continue;
        bytes_ += bufs[j].size();
        pending_[{module, j}] = std::move(bufs[j]);
      }
    }
    done_.insert(key);
  }

 private:
  std::map<std::pair<std::string, size_t>, std::string> pending_;
  std::set<std::pair<std::string, size_t>> done_;
  size_t bytes_ = 0;
};

// What the conversion saw; a module packed twice (past PendingTensors' budget) is reported once.
struct Tracker {
  std::set<std::string> seen;
  std::vector<ConvertResult::Requantized> requantized;
  bool any_act_order = false;
  double max_diff = 0;
  std::string max_diff_module;
};

json awq_config(const QuantScheme& s, const std::string& version) {
  json skip = nullptr;
  std::vector<std::string> keep;
  for (const auto& e : s.modules_to_not_convert) {
    if (e == "lm_head") continue;
    if (e.rfind("re:.*", 0) == 0 && e.size() > 7 && e.compare(e.size() - 2, 2, ".*") == 0) keep.push_back(e.substr(5, e.size() - 7));
    else if (e.rfind("re:", 0) != 0) keep.push_back(e);
  }
  if (!keep.empty()) skip = keep;
  return {{"bits", s.bits}, {"group_size", s.group_size}, {"modules_to_not_convert", skip}, {"quant_method", "awq"},
          {"version", version}, {"zero_point", true}};
}

// AutoGPTQ 0.7.1 save_quantized: quantize_config.json (this key order) and config.json's copy.
nlohmann::ordered_json gptq_config(const QuantScheme& s, bool act, bool v2) {
  nlohmann::ordered_json q;
  q["bits"] = s.bits;
  q["group_size"] = s.group_size;
  q["damp_percent"] = 0.01;
  q["desc_act"] = act;
  q["static_groups"] = false;
  q["sym"] = !s.zero_point;
  q["true_sequential"] = true;
  q["model_name_or_path"] = nullptr;
  q["model_file_base_name"] = "model";
  q["is_marlin_format"] = false;
  q["quant_method"] = "gptq";
  if (v2) q["checkpoint_format"] = "gptq_v2";
  return q;
}

// llm-compressor / compressed-tensors 0.13 pack-quantized config, W4A16 or W4A16_ASYM.
json ct_config(const QuantScheme& s, bool act) {
  json ignore = json::array({"lm_head"});
  for (const auto& e : s.modules_to_not_convert)
    if (e != "lm_head") ignore.push_back(e.rfind("re:", 0) == 0 ? e : "re:.*" + e + ".*");
  const bool channel = s.group_size == -1;
  json w = {{"actorder", act ? json("group") : json(nullptr)}, {"block_structure", nullptr}, {"dynamic", false},
            {"group_size", channel ? json(nullptr) : json(s.group_size)}, {"num_bits", s.bits}, {"observer", "minmax"},
            {"observer_kwargs", json::object()}, {"scale_dtype", nullptr}, {"strategy", channel ? "channel" : "group"},
            {"symmetric", !s.zero_point}, {"type", "int"}, {"zp_dtype", s.zero_point ? json("torch.int8") : json(nullptr)}};
  return {{"config_groups", {{"group_0", {{"format", "pack-quantized"}, {"input_activations", nullptr}, {"output_activations", nullptr},
                                          {"targets", {"Linear"}}, {"weights", w}}}}},
          {"format", "pack-quantized"}, {"global_compression_ratio", nullptr}, {"ignore", ignore}, {"kv_cache_scheme", nullptr},
          {"quant_method", "compressed-tensors"}, {"quantization_status", "compressed"}, {"sparsity_config", json::object()},
          {"transform_config", json::object()}, {"version", "0.13.0"}};
}

// ModelOpt's unified HF export: hf_quant_config.json (indent 4, this key order) and config.json's
// quantization_config from convert_hf_quant_config_format (no group size there).
void write_modelopt_configs(const QuantScheme& s, json& cfg, const OutputDir& out) {
  std::vector<std::string> exclude = {"lm_head"};
  for (const auto& e : s.modules_to_not_convert)
    if (e != "lm_head") exclude.push_back(e);
  nlohmann::ordered_json producer = {{"name", "modelopt"}, {"version", "0.47.0"}};
  nlohmann::ordered_json q;
  q["quant_algo"] = "W4A16_AWQ";
  q["kv_cache_quant_algo"] = nullptr;
  q["group_size"] = s.group_size;
  q["has_zero_point"] = false;
  q["pre_quant_scale"] = true;
  q["exclude_modules"] = exclude;
  nlohmann::ordered_json hf;
  hf["producer"] = producer;
  hf["quantization"] = q;
  write_file_atomic(out.file("hf_quant_config.json"), hf.dump(4));
  cfg["quantization_config"] = {{"ignore", exclude}, {"producer", json::parse(producer.dump())}, {"quant_algo", "W4A16_AWQ"},
                                {"quant_method", "modelopt"}};
}

void write_configs(const ModelDir& dir, const TargetSpec& t, const QuantScheme& s, const Tracker& tr, const OutputDir& out) {
  json cfg = dir.config();
  if (cfg.contains("text_config") && cfg["text_config"].is_object()) cfg["text_config"].erase("quantization_config");
  switch (t.target) {
    case Target::kGemm: cfg["quantization_config"] = awq_config(s, "gemm"); break;
    case Target::kGemv: cfg["quantization_config"] = awq_config(s, "gemv"); break;
    case Target::kGemvFast: cfg["quantization_config"] = awq_config(s, "gemv_fast"); break;
    case Target::kCompressedTensors: cfg["quantization_config"] = ct_config(s, tr.any_act_order); break;
    case Target::kModelOpt: write_modelopt_configs(s, cfg, out); break;
    case Target::kGptq: {
      const auto q = gptq_config(s, tr.any_act_order, t.gptq_v2);
      cfg["quantization_config"] = json::parse(q.dump());
      write_file_atomic(out.file("quantize_config.json"), q.dump(2));
      break;
    }
  }
  write_file_atomic(out.file("config.json"), cfg.dump(2) + "\n");
}

// Which compressed-tensors releases decompress what we write (read from their source:
// compressors/quantized_compressors/pack_quantized.py, decompress_weight, at each tag).
std::string ct_readers_note(bool symmetric) {
  if (symmetric)
    return "compressed-tensors: symmetric pack-quantized (no zero points) decompresses in every release checked, 0.9.3 to 0.13.0 "
           "(transformers 4.51's 0.9.4 included)";
  return "compressed-tensors: asymmetric pack-quantized with packed int32 weight_zero_point decompresses in 0.13.0 and later only; "
         "0.9.4 to 0.12.2 (transformers 4.51 pulls in 0.9.4) raise \"Decompression of packed zero points is currently not "
         "supported\", and 0.9.3 and earlier expect unpacked int8 zero points";
}

}  // namespace

std::vector<std::string> convert_targets() {
  return {"autoawq-gemm", "autoawq-gemv", "autoawq-gemv-fast", "compressed-tensors", "gptq", "modelopt", "dense", "gguf"};
}

ConvertResult convert_model(const ModelDir& dir, const FormatReader& reader, const ConvertOptions& opt) {
  ConvertResult res;
  res.from = reader.scheme().format;
  res.to = opt.to;
  if (opt.to == "gguf") return convert_to_gguf(dir, &reader, opt);
  if (opt.to == "dense") {
    DequantizeOptions d;
    d.out_dir = opt.out_dir;
    d.force = opt.force;
    d.progress = opt.progress;
    d.max_shard_bytes = opt.max_shard_bytes;
    d.dense_overrides = opt.dense_overrides;
    d.allow_nonfinite = opt.allow_nonfinite;
    d.nonfinite_remedy = opt.nonfinite_remedy;
    d.skip_auxiliary = opt.skip_auxiliary;
    const auto r = dequantize_model(dir, reader, d);
    res.casts = r.casts;
    res.warnings = r.warnings;
    res.modules = r.modules;
    res.tensors = r.tensors;
    res.shards = r.shards;
    res.bytes = r.bytes;
    return res;
  }
  QuantScheme src = reader.scheme();
  TargetSpec t = parse_target(opt, src);
  if ((t.target == Target::kGptq || t.target == Target::kCompressedTensors) && src.zero_point && all_zeros_mid(reader)) {
    src.zero_point = false;
    t.symmetric = true;
  }
  // Codes wider than the target holds (8-bit into an AutoAWQ layout or ModelOpt): refused before
  // anything is written, or re-quantized to 4 bits with --requantize (and the config says 4).
  if (const std::string why = bits_refusal(t, src.bits); !why.empty()) {
    if (!opt.requantize) fail(dir.path(), "", "--to " + opt.to + ": the checkpoint's " + why);
    src.bits = 4;
  }
  auto tracker = std::make_shared<Tracker>();
  auto policy = std::make_shared<NonfinitePolicy>();
  policy->file = dir.path();
  policy->allow = opt.allow_nonfinite;
  if (!opt.nonfinite_remedy.empty()) policy->remedy = opt.nonfinite_remedy;
  auto casts = std::make_shared<std::vector<CastStats>>();
  const bool fma_target = t.target == Target::kGemvFast;
  const bool fma_source = res.from == "autoawq-gemv-fast";
  res.arithmetic_differs = fma_target != fma_source;

  std::set<std::string> consumed;
  for (const auto& m : reader.modules())
    for (const auto& n : reader.module_tensors(m)) consumed.insert(n);
  std::vector<OutTensor> plan;
  auto cache = std::make_shared<PendingTensors>();
  ResourceNeeds needs;
  needs.out_dir = opt.out_dir;
  for (const auto& m : reader.modules()) {
    const ModuleInfo info = reader.check(m);
    // Working set: the module read, its integer-zero copy and the packed output (and, re-quantizing,
    // its dense f32 weight and one more canonical copy).
    const int64_t groups = src.group_size <= 0 ? 1 : (info.k + src.group_size - 1) / src.group_size;
    const uint64_t ql = quant_linear_bytes(info.n, info.k, groups);
    const uint64_t ws = 2 * ql + ql / 2 + (opt.requantize ? ql + uint64_t(info.n) * uint64_t(info.k) * 4 : 0);
    if (ws > needs.tensor_bytes) {
      needs.tensor_bytes = ws;
      needs.tensor = m;
      check_resources({opt.out_dir, 0, m, ws});  // now: planning below may read this module
    }
    // Output tensors use the Hugging Face module name (the TRT-LLM npz reader maps its own names).
    std::string out_name = reader.dense_name(m);
    if (out_name.size() > 7 && out_name.compare(out_name.size() - 7, 7, ".weight") == 0) out_name.resize(out_name.size() - 7);
    ModuleShape s{out_name, info.n, info.k, src.group_size == -1 ? info.k : src.group_size, 0, src.bits, info.scale_dtype, false};
    s.n_groups = (s.k + s.group_size - 1) / s.group_size;
    s.has_g_idx = reader.act_order(m);
    for (const auto& tn : reader.module_tensors(m))
      if (tn.find("pre_quant_scale") != std::string::npos || tn.find("prequant_scaling_factor") != std::string::npos) {
        s.has_pqs = true;
        s.pqs_dtype = dir.get(tn).dtype;
      }
    if (t.target != Target::kModelOpt && s.scale_dtype == DType::F32 && scales_fit(reader.read(m), model_dtype(dir)))
      s.scale_dtype = model_dtype(dir);
    const bool g_idx_target = t.target == Target::kGptq || t.target == Target::kCompressedTensors;
    if (!g_idx_target && opt.requantize) s.has_g_idx = false;  // re-quantized with plain groups
    tracker->any_act_order = tracker->any_act_order || s.has_g_idx;
    if (s.has_g_idx && !g_idx_target)
      throw NotRepresentable(where(dir.path(), m, "uses act-order (g_idx not k / group_size), which " + opt.to + " cannot represent (no g_idx); convert to gptq or compressed-tensors instead"));
    if (const std::string why = shape_refusal(t, s); !why.empty()) fail(dir.path(), m, why + "; " + opt.to + " cannot hold this module");
    const auto specs = module_specs(t, s);
    for (size_t i = 0; i < specs.size(); ++i) {
      plan.push_back({specs[i], [&reader, m, t, s, i, cache, tracker, policy, fma_target, fma_source, specs, requant = opt.requantize,
                                 mode = requant_mode(t, src)](SafetensorsWriter& w) {
                        cache->write(s.name, i, w, [&]() {
                          const bool first = tracker->seen.insert(s.name).second;
                          QuantLinear raw = reader.read(m);
                          if (first) guard_module_nonfinite(*policy, reader, m, raw);
                          raw.name = s.name;
                          if (raw.n_groups != s.n_groups || (raw.g_idx.empty() && raw.group_size != s.group_size))
                            fail("", m, "has " + std::to_string(raw.n_groups) + " groups of " + std::to_string(raw.group_size) +
                                            " columns, but the checkpoint's group size implies " + std::to_string(s.n_groups) +
                                            "; checkpoints with mixed group sizes are not converted");
                          QuantLinear q;
                          std::vector<std::string> bufs;
                          try {
                            q = to_integer_zeros(raw);
                            q.scale_dtype = s.scale_dtype;  // planned: same, or F32 scales that are exact model-dtype values
                            bufs = pack_module(t, q, s);
                          } catch (const NotRepresentable& e) {
                            if (!requant) throw;
                            RequantError err;
                            QuantLinear base = raw;
                            if (t.target == Target::kModelOpt) base.pre_quant_scale.clear();  // kept as the input scale
                            base.scale_dtype = s.scale_dtype;  // round the new scales as they will be stored
                            q = requantize_rtn(base, mode, t.target == Target::kGptq || t.target == Target::kCompressedTensors, s.bits, &err);
                            q.scale_dtype = s.scale_dtype;
                            if (scan_nonfinite(q).size() > scan_nonfinite(base).size())  // finite in, Inf out: the dtype is too narrow
                              fail("", m, "re-quantized scales exceed " + std::string(dtype_name(s.scale_dtype)) +
                                              " (the weights are too large for this scale dtype); not written");
                            if (t.target == Target::kModelOpt) q.pre_quant_scale = raw.pre_quant_scale;
                            bufs = pack_module(t, q, s);
                            if (first) tracker->requantized.push_back({s.name, e.what(), err.max_abs, err.rel_rms});
                          }
                          if (fma_target != fma_source && first) {
                            const double d = max_fma_difference(q);
                            if (d > tracker->max_diff || tracker->max_diff_module.empty()) {
                              tracker->max_diff = d;
                              tracker->max_diff_module = s.name;
                            }
                          }
                          for (size_t j = 0; j < specs.size(); ++j)
                            if (bufs[j].size() != specs[j].nbytes()) fail("", specs[j].name, "packer produced the wrong size (internal error)");
                          return bufs;
                        });
                      }});
    }
    ++res.modules;
  }
  for (const TensorView* tv : dir.tensors())
    if (!consumed.count(tv->name)) {
      const TensorView* src = tv;
      for (const TensorView* o : opt.dense_overrides)
        if (o->name == tv->name) src = o;
      plan.push_back(guarded_copy(*src, reader.dense_tensor_name(tv->name), tv->dtype, policy, casts));
    }
  // The safetensors Rust writer's order (dtype descending in its enum order, then name), so a
  // single-file output is laid out as the peers' own tools lay it out.
  std::sort(plan.begin(), plan.end(), [](const OutTensor& a, const OutTensor& b) {
    const int ra = st_dtype_rank(a.spec.dtype), rb = st_dtype_rank(b.spec.dtype);
    return ra != rb ? ra > rb : a.spec.name < b.spec.name;
  });
  OutputDir out(opt.out_dir, opt.force, {dir.path()});
  const ShardedResult sr = write_plan(out, plan, needs, "convert", opt.max_shard_bytes, opt.progress);
  write_configs(dir, t, src, *tracker, out);
  copy_auxiliary(dir.path(), dir.auxiliary_files(), out, opt.skip_auxiliary);
  out.commit();
  res.tensors = sr.tensors;
  res.shards = sr.shards;
  res.bytes = sr.bytes;
  res.max_abs_diff = tracker->max_diff;
  res.max_diff_module = tracker->max_diff_module;
  res.requantized = tracker->requantized;
  res.warnings = policy->warnings;
  if (t.target == Target::kCompressedTensors) res.notes.push_back(ct_readers_note(t.symmetric));
  return res;
}

}  // namespace awq
