// Fuzzes the GGUF parser and validator on arbitrary bytes, and dequantizes what it accepts.
#include <cstdint>
#include <vector>

#include "awq/error.h"
#include "awq/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    awq::GgufFile f("fuzz.gguf", data, size);
    for (const auto& [k, v] : f.metadata()) (void)v.to_string();
    std::vector<float> out;
    for (const auto& t : f.tensors()) {
      const auto info = awq::ggml_type_info(uint32_t(t.type));
      // Dequantize small supported tensors: every byte read must lie inside the input.
      if (!info || !info->dequantizable || t.numel() > (1 << 16)) continue;
      out.resize(size_t(t.numel()));
      awq::dequantize_ggml(t.type, t.data, t.numel(), out.data());
    }
  } catch (const awq::Error&) {
  }
  return 0;
}
