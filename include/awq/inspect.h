// `awq inspect`: what a checkpoint is, validated (everything dequantize would refuse, inspect refuses).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "awq/formats.h"

namespace awq {

// Role of a stored tensor, for counts and bytes by kind.
std::string tensor_kind(const std::string& name, bool quantized_part);

// Builds the report: format, bits, group_size (-1 per-channel), zero_point, quantized_layers,
// dense_linears, modules_to_not_convert, tied-embedding state, counts/bytes by kind,
// effective bits per quantized weight, shards.
nlohmann::ordered_json inspect_model(const ModelDir& dir, const FormatReader& reader);

// A dense checkpoint: no quantization config, every tensor F32/BF16/F16, no quantized layout fits.
bool is_dense_checkpoint(const ModelDir& dir);

// Describes a dense checkpoint (format "dense"): architecture, config torch_dtype, dims (src/arch's
// DecoderDims: ModelConfig's values when the runtime takes the config, else the keys it reads
// anyway; null where absent), runtime_supported (and runtime_refusal, ModelConfig's error),
// tensors by kind (count, dtype, parameters, bytes), parameters (elements stored), total_bytes,
// tied-embedding state, shards.
nlohmann::ordered_json inspect_dense_model(const ModelDir& dir);

// A GGUF file: version, alignment, architecture and its hyper-parameters, tokenizer model and
// token count, tensors by ggml type (count, bytes), bits per weight of the 2-D tensors, and every
// tensor (llama.cpp name, Hugging Face name, type, shape). Validates the file (GgufFile).
nlohmann::ordered_json inspect_gguf(const std::string& path);
std::string render_gguf_inspect_text(const nlohmann::ordered_json& report);

// Human-readable rendering of the report (inspect_model's or inspect_dense_model's).
std::string render_inspect_text(const nlohmann::ordered_json& report);

}  // namespace awq
