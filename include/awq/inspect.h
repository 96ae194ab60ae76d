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

// A GGUF file: version, alignment, architecture and its hyper-parameters, tokenizer model and
// token count, tensors by ggml type (count, bytes), bits per weight of the 2-D tensors, and every
// tensor (llama.cpp name, Hugging Face name, type, shape). Validates the file (GgufFile).
nlohmann::ordered_json inspect_gguf(const std::string& path);
std::string render_gguf_inspect_text(const nlohmann::ordered_json& report);

// Human-readable rendering of the report.
std::string render_inspect_text(const nlohmann::ordered_json& report);

}  // namespace awq
