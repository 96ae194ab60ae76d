// Internals of `awq check`: one function per group of checks, all appending to a shared context.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "awq/check.h"
#include "awq/formats.h"
#include "awq/model_config.h"

namespace awq::check_detail {

struct Ctx {
  std::string path;                       // model directory
  std::vector<Finding>* out = nullptr;
  const ModelDir* dir = nullptr;          // null when the directory could not be opened
  const FormatReader* reader = nullptr;   // null when no layout fits the tensors
  const DecoderDims* dims = nullptr;      // config.json's dimensions (src/arch); set with `dir`
  bool reader_from_config = false;        // reader opened through open_format (config agrees)
  bool progress = false;

  void add(Severity s, const std::string& code, const std::string& tensor, const std::string& message) const {
    out->push_back({s, code, tensor, message});
  }
  void error(const std::string& c, const std::string& t, const std::string& m) const { add(Severity::kError, c, t, m); }
  void warn(const std::string& c, const std::string& t, const std::string& m) const { add(Severity::kWarning, c, t, m); }
  void note(const std::string& c, const std::string& t, const std::string& m) const { add(Severity::kNote, c, t, m); }
};

// Files, before any model-level parsing: every *.safetensors parses and carries format "pt";
// the shard index names existing files, lists every stored tensor exactly once, and its
// total_size is right. Works on directories ModelDir refuses.
void check_files(const Ctx& c);

// Quantization config: present, not only in legacy files, not nested, agrees with the tensors.
void check_quant_config(const Ctx& c, const std::string& open_error);

// Tensors against config.json: dimensions, layer count, missing/unexpected tensors, quantized
// versus dense modules, MoE router gates, tied embeddings, fp16 overflow of dense tensors.
void check_architecture(const Ctx& c);
void check_tied_embeddings(const Ctx& c);
void check_fp16_overflow(const Ctx& c);

// Values: NaN/Inf anywhere, zero points out of range, degenerate scales, constant groups,
// narrow code ranges. Streams one tensor / one module at a time.
void check_values(const Ctx& c);

// Which tensor-parallel sizes vLLM's awq and awq_marlin kernels accept (notes).
void check_tensor_parallel(const Ctx& c);

// Helpers shared by the groups.
bool ends_with(const std::string& s, const std::string& suffix);
bool starts_with(const std::string& s, const std::string& prefix);
// "model.layers.12.mlp.down_proj" -> 12; -1 when the name is not inside a decoder layer.
int64_t layer_index(const std::string& name);
std::string fmt_num(double v);

}  // namespace awq::check_detail
