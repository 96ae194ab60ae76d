// Fuzzes the .npz (zip + .npy) reader on arbitrary bytes.
#include <cstdint>

#include "awq/error.h"
#include "awq/npz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    awq::NpzFile f("fuzz.npz", data, size);
    size_t total = 0;
    for (const auto& t : f.tensors())
      if (t.nbytes) total += t.data[0] + t.data[t.nbytes - 1];
    return int(total & 0);
  } catch (const awq::Error&) {
  }
  return 0;
}
