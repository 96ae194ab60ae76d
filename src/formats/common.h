// Helpers shared by the format readers (internal).
#pragma once
#include <cstring>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "awq/error.h"
#include "awq/formats.h"

namespace awq::fmt_detail {

// Modules that have a tensor named "<module><suffix>", sorted.
std::vector<std::string> modules_with_suffix(const ModelDir& dir, const std::string& suffix);

// The tensor, or an error naming it and what the layout expected.
const TensorView& need(const ModelDir& dir, const std::string& name, const std::string& layout);
void need_dtype(const TensorView& t, std::initializer_list<DType> ok, const std::string& role);
void need_shape(const TensorView& t, const std::vector<int64_t>& shape, const std::string& role);
void need_rank(const TensorView& t, size_t rank, const std::string& role);
[[noreturn]] void bad(const TensorView& t, const std::string& what);

// Loads the float tensor into a vector (exact for F16, BF16, F32).
std::vector<float> load_floats(const TensorView& t);
// Loads an integer tensor (I8..I64, U8..U32) as int64.
std::vector<int64_t> load_ints(const TensorView& t);
inline uint32_t load_u32(const TensorView& t, size_t i) {
  uint32_t v;
  std::memcpy(&v, t.data + 4 * i, 4);
  return v;
}

// Config helpers: the first of `keys` present in `cfg` as int / bool; `def` if none.
int64_t cfg_int(const nlohmann::json& cfg, std::initializer_list<const char*> keys, int64_t def);
bool cfg_bool(const nlohmann::json& cfg, std::initializer_list<const char*> keys, bool def);
std::string cfg_str(const nlohmann::json& cfg, std::initializer_list<const char*> keys, const std::string& def);
std::vector<std::string> cfg_str_list(const nlohmann::json& cfg, const char* key);

// Group size implied by modules' (K, number of groups) pairs: the common K / groups over modules
// with more than one group; -1 (per-channel) when every module has one group per row. 0 when the
// modules disagree or a K is not divisible.
int64_t infer_group_size(const std::vector<std::pair<int64_t, int64_t>>& k_groups);

// Checks a module's group count against the configured group size (-1 = per-channel) and throws
// naming `t` with the group size the tensors imply.
void check_groups(const TensorView& t, int64_t k, int64_t groups, int64_t cfg_group_size);

// Reads the optional "<module>.bias" [N] into q.bias / q.bias_dtype (the stored tensor itself stays a
// passthrough tensor, not listed in module_tensors()). Throws naming it when its shape is not [q.n].
void read_bias(const ModelDir& dir, const std::string& module, QuantLinear& q);

// Skeleton of a reader whose quantized modules are the prefixes of one tensor suffix
// (".qweight", ".weight_packed", ...). Derived constructors end with check_all(): check() is
// virtual and does not dispatch from this base constructor.
class SuffixReader : public FormatReader {
 protected:
  SuffixReader(const ModelDir& dir, QuantScheme s, const std::string& suffix) : dir_(dir) {
    scheme_ = std::move(s);
    modules_ = modules_with_suffix(dir, suffix);
    if (modules_.empty()) fail(dir.path(), "", "no tensor named *" + suffix);
  }
  void check_all() const {
    for (const auto& m : modules_) check(m);
  }
  const ModelDir& dir_;
};

// Fills the shared fields of a QuantLinear.
QuantLinear make_linear(const std::string& name, const std::string& format, int64_t n, int64_t k, int bits,
                        int64_t group_size, bool per_channel, int64_t n_groups);

}  // namespace awq::fmt_detail
