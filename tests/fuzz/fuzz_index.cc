// Fuzzes the sharded-checkpoint index (model.safetensors.index.json) beside one valid shard.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "awq/error.h"
#include "awq/model_dir.h"
#include "awq/safetensors.h"

namespace {
std::string dir() {
  static const std::string d = [] {
    std::string p = (std::filesystem::exists("/dev/shm") ? std::string("/dev/shm") : std::filesystem::temp_directory_path().string()) +
                    "/awq-fuzz-index-" + std::to_string(::getpid());
    std::filesystem::create_directories(p);
    awq::SafetensorsWriter w(p + "/model-00001-of-00001.safetensors", {{"a", awq::DType::F16, {2}}, {"b", awq::DType::I32, {1}}});
    const uint8_t bytes[8] = {0, 0x3c, 0, 0x3c, 1, 2, 3, 4};
    w.append(bytes, 8);
    w.commit();
    return p;
  }();
  return d;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string d = dir();
  {
    std::ofstream f(d + "/model.safetensors.index.json", std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  try {
    awq::ModelDir md(d);
    size_t n = 0;
    for (const auto* t : md.tensors()) n += t->nbytes;
    (void)n;
  } catch (const awq::Error&) {
  }
  return 0;
}
