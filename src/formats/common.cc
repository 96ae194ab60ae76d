#include "formats/common.h"

#include <algorithm>
#include <set>

namespace awq::fmt_detail {

std::vector<std::string> modules_with_suffix(const ModelDir& dir, const std::string& suffix) {
  std::vector<std::string> out;
  for (const TensorView* t : dir.tensors()) {
    const std::string& n = t->name;
    if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(n.substr(0, n.size() - suffix.size()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

void bad(const TensorView& t, const std::string& what) { fail(t.file ? *t.file : "", t.name, what); }

const TensorView& need(const ModelDir& dir, const std::string& name, const std::string& layout) {
  const TensorView* t = dir.find(name);
  if (!t) fail(dir.path(), name, "missing (the " + layout + " layout stores it for every quantized module)");
  return *t;
}

void need_dtype(const TensorView& t, std::initializer_list<DType> ok, const std::string& role) {
  std::string names;
  for (DType d : ok) {
    if (d == t.dtype) return;
    names += (names.empty() ? "" : " or ") + std::string(dtype_name(d));
  }
  bad(t, role + " has dtype " + std::string(dtype_name(t.dtype)) + ", expected " + names);
}

void need_rank(const TensorView& t, size_t rank, const std::string& role) {
  if (t.shape.size() != rank)
    bad(t, role + " has shape " + t.shape_str() + ", expected " + std::to_string(rank) + " dimensions");
}

void need_shape(const TensorView& t, const std::vector<int64_t>& shape, const std::string& role) {
  if (t.shape != shape) {
    TensorView tmp;
    tmp.shape = shape;
    bad(t, role + " has shape " + t.shape_str() + ", expected " + tmp.shape_str());
  }
}

std::vector<float> load_floats(const TensorView& t) {
  if (!is_float(t.dtype) || t.dtype == DType::F64) bad(t, "expected a F16, BF16 or F32 tensor");
  std::vector<float> v(size_t(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = load_float(t.data, t.dtype, i);
  return v;
}

std::vector<int64_t> load_ints(const TensorView& t) {
  if (is_float(t.dtype)) bad(t, "expected an integer tensor");
  std::vector<int64_t> v(size_t(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = int64_t(load_as_double(t.data, t.dtype, i));
  return v;
}

namespace {
const nlohmann::json* first(const nlohmann::json& cfg, std::initializer_list<const char*> keys) {
  if (!cfg.is_object()) return nullptr;
  for (const char* k : keys) {
    auto it = cfg.find(k);
    if (it != cfg.end() && !it->is_null()) return &*it;
  }
  return nullptr;
}
}  // namespace

int64_t cfg_int(const nlohmann::json& cfg, std::initializer_list<const char*> keys, int64_t def) {
  const auto* v = first(cfg, keys);
  if (!v) return def;
  if (!v->is_number_integer()) throw Error("quantization config: \"" + std::string(*keys.begin()) + "\" is not an integer: " + v->dump());
  return v->get<int64_t>();
}

bool cfg_bool(const nlohmann::json& cfg, std::initializer_list<const char*> keys, bool def) {
  const auto* v = first(cfg, keys);
  if (!v) return def;
  if (!v->is_boolean()) throw Error("quantization config: \"" + std::string(*keys.begin()) + "\" is not a boolean: " + v->dump());
  return v->get<bool>();
}

std::string cfg_str(const nlohmann::json& cfg, std::initializer_list<const char*> keys, const std::string& def) {
  const auto* v = first(cfg, keys);
  if (!v) return def;
  if (!v->is_string()) throw Error("quantization config: \"" + std::string(*keys.begin()) + "\" is not a string: " + v->dump());
  return v->get<std::string>();
}

std::vector<std::string> cfg_str_list(const nlohmann::json& cfg, const char* key) {
  std::vector<std::string> out;
  if (!cfg.is_object() || !cfg.contains(key) || cfg[key].is_null()) return out;
  const auto& v = cfg[key];
  if (!v.is_array()) throw Error("quantization config: \"" + std::string(key) + "\" is not a list");
  for (const auto& e : v) {
    if (!e.is_string()) throw Error("quantization config: \"" + std::string(key) + "\" has a non-string entry");
    out.push_back(e.get<std::string>());
  }
  return out;
}

int64_t infer_group_size(const std::vector<std::pair<int64_t, int64_t>>& k_groups) {
  int64_t g = 0;
  std::set<int64_t> ks;
  for (const auto& [k, n] : k_groups) {
    if (n <= 0 || k % n != 0) return 0;
    ks.insert(k);
    if (n == 1) continue;
    if (g != 0 && g != k / n) return 0;
    g = k / n;
  }
  if (g != 0) {
    for (const auto& [k, n] : k_groups)
      if (n == 1 && k != g) return 0;
    return g;
  }
  return ks.empty() ? 0 : -1;  // one group per row everywhere: per-channel
}

void check_groups(const TensorView& t, int64_t k, int64_t groups, int64_t cfg_group_size) {
  const int64_t want = cfg_group_size == -1 ? 1 : (cfg_group_size > 0 ? (k + cfg_group_size - 1) / cfg_group_size : -1);
  if (groups == want && (cfg_group_size == -1 || k % cfg_group_size == 0)) return;
  const std::string implied = groups > 0 && k % groups == 0 ? std::to_string(k / groups) : "none that divides K";
  bad(t, "has " + std::to_string(groups) + " group(s) for K = " + std::to_string(k) + ", but the config's group_size " +
             std::to_string(cfg_group_size) + (cfg_group_size == -1 ? " (per-channel) needs 1" : " needs " + std::to_string(want) +
             (k % std::max<int64_t>(cfg_group_size, 1) ? " and K divisible by it" : "")) +
             "; the tensors imply group size " + implied);
}

void read_bias(const ModelDir& dir, const std::string& module, QuantLinear& q) {
  const TensorView* b = dir.find(module + ".bias");
  if (!b) return;
  need_shape(*b, {q.n}, "bias");
  q.bias_dtype = b->dtype;
  q.bias = load_floats(*b);
}

QuantLinear make_linear(const std::string& name, const std::string& format, int64_t n, int64_t k, int bits,
                        int64_t group_size, bool per_channel, int64_t n_groups) {
  QuantLinear q;
  q.name = name;
  q.format = format;
  q.n = n;
  q.k = k;
  q.bits = bits;
  q.group_size = group_size;
  q.per_channel = per_channel;
  q.n_groups = n_groups;
  q.codes.resize(size_t(n) * size_t(k));
  q.scales.resize(size_t(n) * size_t(n_groups));
  return q;
}

}  // namespace awq::fmt_detail
