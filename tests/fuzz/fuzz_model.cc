// Fuzzes format detection and every reader: the input's first byte picks a quantization config,
// the rest is model.safetensors. Every module is read and dequantized; only awq::Error may escape.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "awq/error.h"
#include "awq/formats.h"

namespace {
const char* kConfigs[] = {
    R"({"quantization_config":{"quant_method":"awq","bits":4,"group_size":128,"zero_point":true,"version":"gemm"}})",
    R"({"quantization_config":{"quant_method":"awq","bits":4,"group_size":64,"zero_point":true,"version":"gemv"}})",
    R"({"quantization_config":{"quant_method":"awq","bits":4,"group_size":32,"zero_point":true,"version":"gemv_fast"}})",
    R"({"quantization_config":{"quant_method":"gptq","bits":4,"group_size":32,"desc_act":true,"sym":false}})",
    R"({"quantization_config":{"quant_method":"compressed-tensors","format":"pack-quantized","config_groups":{"group_0":{"targets":["Linear"],"weights":{"num_bits":4,"type":"int","symmetric":false,"strategy":"group","group_size":32}}}}})",
    R"({"quantization_config":{"quant_method":"modelopt","quant_algo":"W4A16_AWQ"}})",
    R"({})",
};

std::string dir() {
  static const std::string d = [] {
    std::string p = (std::filesystem::exists("/dev/shm") ? std::string("/dev/shm") : std::filesystem::temp_directory_path().string()) +
                    "/awq-fuzz-model-" + std::to_string(::getpid());
    std::filesystem::create_directories(p);
    return p;
  }();
  return d;
}

void put(const std::string& name, const uint8_t* d, size_t n) {
  std::ofstream f(dir() + "/" + name, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(d), std::streamsize(n));
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string cfg = kConfigs[data[0] % (sizeof kConfigs / sizeof kConfigs[0])];
  put("config.json", reinterpret_cast<const uint8_t*>(cfg.data()), cfg.size());
  put("model.safetensors", data + 1, size - 1);
  try {
    awq::ModelDir md(dir());
    auto reader = awq::open_format(md);
    std::vector<uint8_t> out;
    for (const auto& m : reader->modules()) {
      const awq::QuantLinear q = reader->read(m);
      q.validate();
      if (size_t(q.n) * size_t(q.k) > (size_t(1) << 24)) continue;
      out.resize(size_t(q.n * q.k) * 2);
      awq::dequantize_ref(q, awq::DType::F16, out.data());
    }
  } catch (const awq::Error&) {
  }
  return 0;
}
