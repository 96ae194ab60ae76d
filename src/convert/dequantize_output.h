// The output half of `awq dequantize`, shared by checkpoint directories (dequantize_model.cc) and
// GGUF files (dequantize_gguf.cc) (internal).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "awq/dequantize_model.h"
#include "awq/resources.h"
#include "convert/shard_writer.h"

namespace awq::convert_detail {

// Sorts `plan` by name (a name planned twice is refused, naming `source`), opens OUT_DIR (refusing
// one that is, contains or lies inside `source`), refuses what memory or disk cannot hold
// (`needs`), writes the tensors sharded, then config.json (`config` without quantization_config,
// its torch_dtype / dtype / text_config.torch_dtype set to res.dtype) and `auxiliary` (files of the
// directory `source`), and commits. Fills res.shards, res.tensors and res.bytes.
void write_dequantized(std::vector<OutTensor> plan, const std::string& source, nlohmann::ordered_json config,
                       const std::vector<std::string>& auxiliary, const ResourceNeeds& needs, const DequantizeOptions& opt,
                       DequantizeResult& res);

}  // namespace awq::convert_detail
