// Fuzzes the sealed-file parser and authenticator (include/awq/sealed.h) on arbitrary bytes: the
// header checks, the size arithmetic, the chunk walk and the tensor naming on a failure must never
// crash, read out of bounds, or accept bytes that were not sealed under the key.
#include <cstdint>
#include <vector>

#include "awq/error.h"
#include "awq/sealed.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  awq::SealKey key;
  key.bytes.fill(7);  // the seed corpus is sealed with this key, so mutants get past the header
  try {
    std::vector<uint8_t> out(size);  // a valid file's plaintext is smaller than the file
    awq::unseal_bytes("fuzz.enc", data, size, "model.safetensors", key, out.data());
  } catch (const awq::Error&) {
  }
  try {  // the streaming path, which names tensors from its own copy of the header
    awq::unseal_stream("fuzz.enc", data, size, "model.safetensors", key, nullptr, nullptr);
  } catch (const awq::Error&) {
  }
  return 0;
}
