// Fuzzes the safetensors header parser and validator on arbitrary bytes.
#include <cstdint>

#include "awq/error.h"
#include "awq/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    awq::SafetensorsFile f("fuzz.safetensors", data, size);
    size_t total = 0;
    for (const auto& t : f.tensors()) {
      // Touch the first and last byte of every tensor: offsets must be inside the input.
      if (t.nbytes) total += t.data[0] + t.data[t.nbytes - 1];
      (void)t.numel();
    }
    return int(total & 0);
  } catch (const awq::Error&) {
  }
  return 0;
}
