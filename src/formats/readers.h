// One opener per format (internal). Each validates every module against the config (when `cfg`
// is non-null it is the format's own config, else the scheme is inferred from tensor shapes) and
// throws awq::Error with the reason the layout does not fit.
#pragma once
#include <memory>

#include "awq/formats.h"

namespace awq::fmt_detail {

using Opener = std::unique_ptr<FormatReader> (*)(const ModelDir& dir, const nlohmann::json* cfg);

std::unique_ptr<FormatReader> open_autoawq_gemm(const ModelDir& dir, const nlohmann::json* cfg);
std::unique_ptr<FormatReader> open_autoawq_gemv(const ModelDir& dir, const nlohmann::json* cfg);
std::unique_ptr<FormatReader> open_autoawq_gemv_fast(const ModelDir& dir, const nlohmann::json* cfg);
std::unique_ptr<FormatReader> open_compressed_tensors(const ModelDir& dir, const nlohmann::json* cfg);
std::unique_ptr<FormatReader> open_gptq(const ModelDir& dir, const nlohmann::json* cfg);
std::unique_ptr<FormatReader> open_modelopt(const ModelDir& dir, const nlohmann::json* cfg);
std::unique_ptr<FormatReader> open_trtllm_npz(const ModelDir& dir, const nlohmann::json* cfg);

// AWQ-family config: bits|w_bit, group_size|q_group_size, zero_point, version, modules_to_not_convert.
QuantScheme awq_scheme(const nlohmann::json* cfg, const std::string& format);

}  // namespace awq::fmt_detail
