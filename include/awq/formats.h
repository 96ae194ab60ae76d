// Checkpoint formats: detection, then one reader per format that turns stored tensors into the
// canonical QuantLinear. Format names are the ones `inspect --json` reports.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "awq/model_dir.h"
#include "awq/quant_linear.h"

namespace awq {

// What the checkpoint declares and stores, as resolved from config and tensors together.
struct QuantScheme {
  std::string format;        // "autoawq-gemm", "autoawq-gemv", "autoawq-gemv-fast", "compressed-tensors",
                             // "gptq", "modelopt", "trtllm-npz"
  int bits = 4;
  int64_t group_size = 128;  // -1 = per-channel
  bool zero_point = true;
  std::string version;       // format-specific detail: AWQ "gemm"/"gemv"/..., CT version, ...
  std::string gptq_format;   // "v1" / "v2" for gptq, else empty
  std::vector<std::string> modules_to_not_convert;  // or the format's ignore list
};

// Shape and scale precision of one quantized module, known without unpacking it.
struct ModuleInfo {
  int64_t n = 0, k = 0;  // out_features, in_features
  DType scale_dtype = DType::F16;
};

class FormatReader {
 public:
  virtual ~FormatReader() = default;
  const QuantScheme& scheme() const { return scheme_; }
  // Quantized modules (e.g. "model.layers.0.mlp.down_proj"), sorted by name.
  const std::vector<std::string>& modules() const { return modules_; }
  // Stored tensors that belong to `module` and are consumed by read() (so not copied as dense).
  virtual std::vector<std::string> module_tensors(const std::string& module) const = 0;
  // Cheap validation of one module's tensors (names, dtypes, shapes vs config); throws awq::Error.
  virtual ModuleInfo check(const std::string& module) const = 0;
  // Reads one module into canonical form (check() first); throws awq::Error. QuantLinear::bias is
  // filled for kernels, but the stored bias stays an ordinary tensor: it is not in module_tensors().
  virtual QuantLinear read(const std::string& module) const = 0;
  // Whether the module stores an act-order g_idx (QuantLinear::act_order() of what read() returns),
  // answered by reading only the stored g_idx (K integers). Throws what check() throws.
  virtual bool act_order(const std::string& module) const { return false; }
  // Name of the module's weight in a dense Hugging Face checkpoint.
  virtual std::string dense_name(const std::string& module) const { return module + ".weight"; }
  // Names of the non-quantized tensors as a dense HF checkpoint would call them (identity for HF
  // layouts; the TRT-LLM npz reader maps its own names).
  virtual std::string dense_tensor_name(const std::string& stored) const { return stored; }

 protected:
  QuantScheme scheme_;
  std::vector<std::string> modules_;
};

// Detects the format from config and tensor names/shapes together and opens its reader. Every
// module is check()ed. A checkpoint that fits no layout, or whose config contradicts its tensors,
// gets an awq::Error that names the tensor, what was found, the layouts tried, and the nearest one
// and why it failed. Marlin-packed AutoAWQ and llm-awq .pt pickles are named, not read.
std::unique_ptr<FormatReader> open_format(const ModelDir& dir);

// Best effort for diagnostics: ignores the quantization config and returns the first layout the
// tensors alone fit (group size inferred from shapes), or nullptr when none does.
std::unique_ptr<FormatReader> open_format_from_tensors(const ModelDir& dir);

// Layout fact shared by the AutoAWQ GEMV / GEMV_fast readers and writers: the padded width Wz of
// qzeros, AutoAWQ's calculate_zeros_width(K, G) = ceil(ceil((K/G)/8) / m) * m with m = 1 for
// G >= 128, 2 for G = 64, 4 for G = 32. Returns 0 for a group size AutoAWQ rejects.
int64_t awq_zeros_width(int64_t k, int64_t g);

// Names of every readable format, in the order detection tries them.
std::vector<std::string> format_names();

}  // namespace awq
