// Refusals shared by every writer (dequantize, convert, --requantize), built on the scans `awq
// check` reports from (awq/value_scan.h), so a refusal and a check finding always agree (internal).
//   - NaN/Inf in a module's scales / scaled zeros / pre-quant scales or in any floating tensor:
//     refused naming the tensor, the count and the first row and group (or column), unless the
//     user allowed them, in which case each tensor adds one warning line and is carried through.
//   - Values an output float dtype cannot hold (a dequantized weight, or a tensor cast down):
//     refused naming the tensor, the largest |value|, where it is, and the dtypes that hold it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "awq/formats.h"
#include "awq/value_scan.h"
#include "convert/shard_writer.h"

namespace awq::convert_detail {

struct NonfinitePolicy {
  std::string file;                    // the model directory, for messages
  bool allow = false;                  // --allow-nonfinite
  // What the refusal tells the user to do (quantize, which has no --allow-nonfinite, says its own).
  std::string remedy = "Fix the source, or pass --allow-nonfinite to carry them through";
  std::vector<std::string> warnings;   // one line per tensor carried through
};

// Throws awq::Error "FILE: TENSOR: <summary>" unless policy.allow; then records a warning.
void guard_nonfinite(NonfinitePolicy& p, const std::string& tensor, const NonfiniteScan& s, const std::string& what);
// Every float array of module `m` (scan_nonfinite(QuantLinear)), named by its stored tensor.
void guard_module_nonfinite(NonfinitePolicy& p, const FormatReader& r, const std::string& m, const QuantLinear& q);
// Throws when a weight of `q` dequantizes to a value `out` cannot hold (RNE rounds it to Inf).
void guard_module_range(const std::string& file, const std::string& m, const QuantLinear& q, DType out);

// How many floating tensors were cast between two dtypes, and the largest relative rounding.
struct CastStats {
  DType from = DType::F16, to = DType::F16;
  size_t tensors = 0;
  double max_rel = 0;
  std::string worst_tensor;
};

// A stored tensor written as `to`: NaN/Inf guarded (policy), F16/BF16/F32 cast with RNE when the
// dtype differs (values `to` cannot hold refused, the rounding recorded in `stats`), other dtypes
// copied unchanged. `to` = the tensor's own dtype copies it after the scan.
OutTensor guarded_copy(const TensorView& t, const std::string& out_name, DType to, std::shared_ptr<NonfinitePolicy> policy,
                       std::shared_ptr<std::vector<CastStats>> stats);

// The stored tensor of module `m` holding `role` ("scales", "scaled zeros", "pre-quant scales").
std::string role_tensor_name(const FormatReader& r, const std::string& m, const std::string& role);

}  // namespace awq::convert_detail
