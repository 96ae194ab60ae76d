// compressed-tensors "pack-quantized" layout (docs/formats.md §8; llm-compressor W4A16 / W4A16_ASYM,
// AWQModifier and GPTQModifier output). Per quantized Linear <m>:
//   <m>.weight_packed      I32 [N, ceil(K/pf)]  pf = 32/bits values per word, packed along K in
//                          sequential order (bits·i of word c hold column pf·c + i), offset-binary
//                          (stored u = q + 2^(bits-1), q the signed code); padding columns are 0.
//   <m>.weight_scale       F16/BF16/F32 [N, G_n]  G_n = ceil(K/G) (group), 1 (channel).
//   <m>.weight_shape       I64 (or I32) [2] = [N, K].
//   <m>.weight_zero_point  asymmetric only; either packed I32 [ceil(N/pf), G_n] along N
//                          (compressed-tensors >= 0.9.4, offset-binary like the codes), or the
//                          older unpacked I8 [N, G_n] holding the signed zero zp.
//   <m>.weight_g_idx       I32 [K], optional (actorder "group").
// Canonical form: codes = u, zero = u_z = zp + 2^(bits-1) (kInteger) or kSymmetric, so that
// w = s·(u − u_z) = s·(q − zp), one f32 product rounded once, as `_dequantize` computes it.
// Supported: format "pack-quantized" (top level, or every group of "mixed-precision"), int weights
// of 4 or 8 bits, strategy group or channel. Everything else is refused by name.
#include <regex>

#include "formats/common.h"
#include "formats/readers.h"

namespace awq::fmt_detail {
namespace {

const char* kLayout = "compressed-tensors";

// The weights arguments of one config group, resolved.
struct WeightArgs {
  int bits = 4;
  bool symmetric = true;
  bool per_channel = false;
  int64_t group_size = 128;  // -1 for channel
  std::string actorder;      // "", "group", "weight", "static"
  std::vector<std::string> targets;
  std::string group_name;
};

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

[[noreturn]] void cfg_fail(const std::string& what) { throw Error("compressed-tensors quantization config: " + what); }

WeightArgs parse_weights(const std::string& group_name, const nlohmann::json& grp, const std::string& top_format) {
  WeightArgs a;
  a.group_name = group_name;
  if (!grp.is_object()) cfg_fail("config_groups." + group_name + " is not an object");
  const std::string fmt = lower(cfg_str(grp, {"format"}, top_format));
  if (fmt != "pack-quantized")
    cfg_fail("config_groups." + group_name + " has format \"" + fmt +
             "\"; only \"pack-quantized\" (int4/int8 weights packed into int32) is read. "
             "\"naive-quantized\" / \"int-quantized\" (unpacked int8), \"float-quantized\" (fp8), "
             "\"marlin-24\" / \"sparse-24-bitmask\" (2:4 sparse) and \"nvfp4-pack-quantized\" are not");
  if (!grp.contains("weights") || !grp["weights"].is_object())
    cfg_fail("config_groups." + group_name + " has no \"weights\" quantization arguments");
  const auto& w = grp["weights"];
  const std::string type = lower(cfg_str(w, {"type"}, "int"));
  if (type != "int") cfg_fail("config_groups." + group_name + ".weights.type is \"" + type + "\"; only int weights are read");
  a.bits = int(cfg_int(w, {"num_bits"}, 4));
  if (a.bits != 4 && a.bits != 8)
    cfg_fail("config_groups." + group_name + ".weights.num_bits = " + std::to_string(a.bits) + "; only 4 and 8 are read");
  a.symmetric = cfg_bool(w, {"symmetric"}, true);
  const std::string strategy = lower(cfg_str(w, {"strategy"}, "group"));
  if (cfg_bool(w, {"dynamic"}, false)) cfg_fail("config_groups." + group_name + ".weights.dynamic is true; weights must be static");
  if (strategy == "channel") {
    a.per_channel = true;
    a.group_size = -1;
  } else if (strategy == "group") {
    a.group_size = cfg_int(w, {"group_size"}, 128);
    if (a.group_size == -1) a.per_channel = true;
    else if (a.group_size <= 0) cfg_fail("config_groups." + group_name + ".weights.group_size = " + std::to_string(a.group_size) + " is not positive");
  } else {
    cfg_fail("config_groups." + group_name + ".weights.strategy is \"" + strategy +
             "\"; only \"group\" and \"channel\" are read (not tensor, block, token or tensor_group)");
  }
  if (w.contains("actorder") && w["actorder"].is_string()) a.actorder = lower(w["actorder"].get<std::string>());
  else if (w.contains("actorder") && w["actorder"].is_boolean() && w["actorder"].get<bool>()) a.actorder = "group";
  a.targets = cfg_str_list(grp, "targets");
  return a;
}

// Whether a config-group target names this module: "re:<regex>" matched at the start of the name
// (Python re.match), an exact module name, or a class name such as "Linear" (every quantized
// module here is a Linear, so class targets match all).
bool target_matches(const std::string& target, const std::string& module) {
  if (target.rfind("re:", 0) == 0) {
    try {
      return std::regex_search(module, std::regex(target.substr(3)), std::regex_constants::match_continuous);
    } catch (const std::regex_error&) {
      cfg_fail("target \"" + target + "\" is not a valid regular expression");
    }
  }
  if (target == module) return true;
  return target.find('.') == std::string::npos && !target.empty() && std::isupper(static_cast<unsigned char>(target[0]));
}

class CompressedTensorsReader final : public SuffixReader {
 public:
  CompressedTensorsReader(const ModelDir& dir, QuantScheme s, std::vector<WeightArgs> groups)
      : SuffixReader(dir, std::move(s), ".weight_packed"), groups_(std::move(groups)) {
    check_all();
  }

  std::vector<std::string> module_tensors(const std::string& m) const override {
    std::vector<std::string> t = {m + ".weight_packed", m + ".weight_scale", m + ".weight_shape"};
    for (const char* opt : {".weight_zero_point", ".weight_g_idx"})
      if (dir_.find(m + opt)) t.push_back(m + opt);
    return t;
  }

  ModuleInfo check(const std::string& m) const override {
    const Dims d = shapes(m);
    return {d.n, d.k, dir_.get(m + ".weight_scale").dtype};
  }

  bool act_order(const std::string& m) const override {
    const Dims d = shapes(m);
    const TensorView* gi = dir_.find(m + ".weight_g_idx");
    return gi && QuantLinear::is_act_order(load_ints(*gi), d.g);
  }

  QuantLinear read(const std::string& m) const override {
    const Dims d = shapes(m);
    const WeightArgs& a = *d.args;
    const TensorView& wp = dir_.get(m + ".weight_packed");
    const TensorView& ws = dir_.get(m + ".weight_scale");
    const int pf = 32 / a.bits;
    const uint32_t mask = (1u << a.bits) - 1;
    const int32_t offset = 1 << (a.bits - 1);
    QuantLinear q = make_linear(m, scheme_.format, d.n, d.k, a.bits, d.g, a.per_channel, d.ng);
    q.scale_dtype = ws.dtype;
    const int64_t words = wp.dim(1);
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t kk = 0; kk < d.k; ++kk) {
        const uint32_t w = load_u32(wp, size_t(n * words + kk / pf));
        q.codes[size_t(n * d.k + kk)] = uint8_t((w >> (a.bits * (kk % pf))) & mask);
      }
    for (size_t i = 0; i < q.scales.size(); ++i) q.scales[i] = load_float(ws.data, ws.dtype, i);
    if (const TensorView* zp = dir_.find(m + ".weight_zero_point")) {
      q.zero_mode = ZeroMode::kInteger;
      q.zeros.resize(q.scales.size());
      if (d.zp_packed) {
        for (int64_t g = 0; g < d.ng; ++g)
          for (int64_t n = 0; n < d.n; ++n) {
            const uint32_t w = load_u32(*zp, size_t((n / pf) * d.ng + g));
            q.zeros[size_t(n * d.ng + g)] = int32_t((w >> (a.bits * (n % pf))) & mask);
          }
      } else {
        const auto v = load_ints(*zp);
        for (size_t i = 0; i < v.size(); ++i) {
          if (v[i] < -offset || v[i] >= offset)
            bad(*zp, "weight_zero_point[" + std::to_string(i / size_t(d.ng)) + ", " + std::to_string(i % size_t(d.ng)) + "] = " +
                         std::to_string(v[i]) + " is outside the signed " + std::to_string(a.bits) + "-bit range [" +
                         std::to_string(-offset) + ", " + std::to_string(offset - 1) + "]");
          q.zeros[i] = int32_t(v[i]) + offset;
        }
      }
    } else {
      q.zero_mode = ZeroMode::kSymmetric;
    }
    if (const TensorView* gi = dir_.find(m + ".weight_g_idx")) {
      const auto v = load_ints(*gi);
      q.g_idx.resize(v.size());
      for (size_t i = 0; i < v.size(); ++i) {
        if (v[i] < 0 || v[i] >= d.ng)
          bad(*gi, "weight_g_idx[" + std::to_string(i) + "] = " + std::to_string(v[i]) + " is outside [0, " + std::to_string(d.ng) +
                       ") (weight_scale has " + std::to_string(d.ng) + " groups)");
        q.g_idx[i] = int32_t(v[i]);
      }
    }
    read_bias(dir_, m, q);
    return q;
  }

 private:
  struct Dims {
    int64_t n, k, g, ng;
    bool zp_packed;
    const WeightArgs* args;
  };

  const WeightArgs& args_for(const std::string& m) const {
    if (groups_.size() == 1) return groups_[0];
    // Exact or regex targets first, then class targets such as "Linear" (as compressed-tensors
    // prefers the most specific match).
    for (int pass = 0; pass < 2; ++pass)
      for (const auto& g : groups_)
        for (const auto& t : g.targets) {
          const bool is_name = t.rfind("re:", 0) == 0 || t.find('.') != std::string::npos;
          if ((pass == 0) == is_name && target_matches(t, m)) return g;
        }
    fail(dir_.path(), m + ".weight_packed", "no config_groups entry targets this module");
  }

  Dims shapes(const std::string& m) const {
    const WeightArgs& a = args_for(m);
    const int pf = 32 / a.bits;
    const TensorView& wp = need(dir_, m + ".weight_packed", kLayout);
    need_dtype(wp, {DType::I32}, "weight_packed");
    need_rank(wp, 2, "weight_packed");
    const TensorView& wsh = need(dir_, m + ".weight_shape", kLayout);
    need_dtype(wsh, {DType::I64, DType::I32}, "weight_shape");
    need_shape(wsh, {2}, "weight_shape");
    const auto shp = load_ints(wsh);
    const int64_t n = shp[0], k = shp[1];
    if (n <= 0 || k <= 0 || n > (int64_t(1) << 40) || k > (int64_t(1) << 40))
      bad(wsh, "weight_shape = [" + std::to_string(n) + ", " + std::to_string(k) + "] is not a valid [N, K]");
    if (wp.dim(0) != n || wp.dim(1) != (k + pf - 1) / pf)
      bad(wp, "weight_packed has shape " + wp.shape_str() + ", expected [" + std::to_string(n) + ", " +
                  std::to_string((k + pf - 1) / pf) + "] for weight_shape [" + std::to_string(n) + ", " + std::to_string(k) +
                  "] at " + std::to_string(a.bits) + " bits (" + std::to_string(pf) + " values per int32 along K)");
    const int64_t g = a.per_channel ? k : a.group_size;
    const int64_t ng = a.per_channel ? 1 : (k + g - 1) / g;
    const TensorView& ws = need(dir_, m + ".weight_scale", kLayout);
    need_dtype(ws, {DType::F16, DType::BF16, DType::F32}, "weight_scale");
    need_rank(ws, 2, "weight_scale");
    if (ws.dim(0) != n || ws.dim(1) != ng) {
      std::string implied;
      if (ws.dim(0) == n && ws.dim(1) > 0)
        implied = ws.dim(1) == 1 ? " (the tensor implies per-channel scales)"
                                 : " (the tensor implies group size " + std::to_string((k + ws.dim(1) - 1) / ws.dim(1)) + ")";
      bad(ws, "weight_scale has shape " + ws.shape_str() + ", expected [" + std::to_string(n) + ", " + std::to_string(ng) +
                  "] for K = " + std::to_string(k) + " and " +
                  (a.per_channel ? std::string("strategy channel") : "group_size " + std::to_string(g)) + " in config group " +
                  a.group_name + implied);
    }
    bool zp_packed = false;
    if (const TensorView* zp = dir_.find(m + ".weight_zero_point")) {
      if (a.symmetric)
        bad(*zp, "weight_zero_point is stored but config group " + a.group_name + " says symmetric: true");
      need_rank(*zp, 2, "weight_zero_point");
      const int64_t packed_rows = (n + pf - 1) / pf;
      if (zp->dtype == DType::I32 && zp->dim(0) == packed_rows && zp->dim(1) == ng && packed_rows != n) {
        zp_packed = true;
      } else if ((zp->dtype == DType::I8 || zp->dtype == DType::I32) && zp->dim(0) == n && zp->dim(1) == ng) {
        zp_packed = false;  // pre-0.9.4 unpacked signed zero points
      } else {
        bad(*zp, "weight_zero_point has dtype " + std::string(dtype_name(zp->dtype)) + " and shape " + zp->shape_str() +
                     ", expected I32 [" + std::to_string(packed_rows) + ", " + std::to_string(ng) + "] (packed along N) or I8 [" +
                     std::to_string(n) + ", " + std::to_string(ng) + "] (unpacked)");
      }
    } else if (!a.symmetric) {
      need(dir_, m + ".weight_zero_point", kLayout + std::string(" asymmetric (symmetric: false)"));
    }
    if (const TensorView* gi = dir_.find(m + ".weight_g_idx")) {
      need_dtype(*gi, {DType::I32, DType::I64}, "weight_g_idx");
      need_shape(*gi, {k}, "weight_g_idx");
    }
    return {n, k, g, ng, zp_packed, &a};
  }

  std::vector<WeightArgs> groups_;
};

}  // namespace

std::unique_ptr<FormatReader> open_compressed_tensors(const ModelDir& dir, const nlohmann::json* cfg) {
  QuantScheme s;
  s.format = kLayout;
  std::vector<WeightArgs> groups;
  if (cfg) {
    const std::string method = lower(cfg_str(*cfg, {"quant_method"}, "compressed-tensors"));
    if (method != "compressed-tensors") cfg_fail("quant_method is \"" + method + "\", expected \"compressed-tensors\"");
    std::string top = lower(cfg_str(*cfg, {"format"}, "pack-quantized"));
    if (top == "mixed-precision") top = "";  // every group names its own
    else if (top != "pack-quantized")
      cfg_fail("format is \"" + top + "\"; only \"pack-quantized\" (int4/int8 weights packed into int32) is read. "
               "\"naive-quantized\" / \"int-quantized\" (unpacked int8), \"float-quantized\" (fp8), "
               "\"marlin-24\" / \"sparse-24-bitmask\" (2:4 sparse) and \"nvfp4-pack-quantized\" are not");
    const std::string status = lower(cfg_str(*cfg, {"quantization_status"}, "compressed"));
    if (status != "compressed")
      cfg_fail("quantization_status is \"" + status + "\"; only \"compressed\" checkpoints store weight_packed");
    if (cfg->contains("sparsity_config") && (*cfg)["sparsity_config"].is_object()) {
      const std::string sf = lower(cfg_str((*cfg)["sparsity_config"], {"format"}, "dense"));
      if (sf != "dense") cfg_fail("sparsity_config.format is \"" + sf + "\"; sparse-compressed weights are not read");
    }
    if (cfg->contains("transform_config") && (*cfg)["transform_config"].is_object()) {
      const auto& tc = (*cfg)["transform_config"];
      if (tc.contains("config_groups") && tc["config_groups"].is_object() && !tc["config_groups"].empty())
        cfg_fail("transform_config has config_groups (online rotations); the stored weights alone are not the dense model");
    }
    if (!cfg->contains("config_groups") || !(*cfg)["config_groups"].is_object() || (*cfg)["config_groups"].empty())
      cfg_fail("no config_groups");
    for (const auto& [name, grp] : (*cfg)["config_groups"].items()) {
      if (grp.is_object() && (!grp.contains("weights") || grp["weights"].is_null())) continue;  // activation-only group
      groups.push_back(parse_weights(name, grp, top.empty() ? "" : top));
    }
    if (groups.empty()) cfg_fail("no config group quantizes weights");
    s.version = cfg_str(*cfg, {"version"}, "");
    s.modules_to_not_convert = cfg_str_list(*cfg, "ignore");
  } else {
    // No config: infer from the first module's tensors.
    WeightArgs a;
    a.group_name = "(inferred)";
    const auto mods = modules_with_suffix(dir, ".weight_packed");
    if (mods.empty()) fail(dir.path(), "", "no tensor named *.weight_packed (the compressed-tensors pack-quantized layout)");
    const TensorView* ws = dir.find(mods[0] + ".weight_scale");
    const TensorView* wsh = dir.find(mods[0] + ".weight_shape");
    a.symmetric = dir.find(mods[0] + ".weight_zero_point") == nullptr;
    // Bits from the first module: weight_packed [N, ceil(K·bits/32)] against weight_shape [N, K].
    if (const TensorView* wp = dir.find(mods[0] + ".weight_packed"); wp && wsh && wp->shape.size() == 2 && wsh->numel() == 2 && !is_float(wsh->dtype)) {
      const int64_t k = load_ints(*wsh)[1];
      if (k > 0 && wp->dim(1) == (k + 3) / 4 && wp->dim(1) != (k + 7) / 8) a.bits = 8;
    }
    std::vector<std::pair<int64_t, int64_t>> kg;  // (K, groups) of every module
    for (const auto& m : mods) {
      const TensorView* s2 = dir.find(m + ".weight_scale");
      const TensorView* sh2 = dir.find(m + ".weight_shape");
      if (s2 && sh2 && s2->shape.size() == 2 && sh2->numel() == 2 && !is_float(sh2->dtype)) kg.emplace_back(load_ints(*sh2)[1], s2->dim(1));
    }
    const int64_t common = infer_group_size(kg);
    if (common == -1) {
      a.per_channel = true;
      a.group_size = -1;
    } else if (common > 0) {
      a.group_size = common;
    } else if (ws && wsh && ws->shape.size() == 2 && wsh->numel() == 2 && !is_float(wsh->dtype)) {  // ceil-divided groups
      const int64_t k = load_ints(*wsh)[1];
      if (ws->dim(1) == 1) {
        a.per_channel = true;
        a.group_size = -1;
      } else if (ws->dim(1) > 0 && k > 0) {
        a.group_size = (k + ws->dim(1) - 1) / ws->dim(1);
      }
    }
    groups.push_back(a);
  }
  const WeightArgs& first = groups.front();
  s.bits = first.bits;
  s.group_size = first.group_size;
  s.zero_point = !first.symmetric;
  return std::make_unique<CompressedTensorsReader>(dir, std::move(s), std::move(groups));
}

}  // namespace awq::fmt_detail
