// NumPy .npz archives (zip of .npy members, stored or deflated), as TensorRT-LLM <= 0.7 wrote them.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "awq/safetensors.h"

namespace awq {

class NpzFile {
 public:
  explicit NpzFile(const std::string& path);
  NpzFile(const std::string& label, const uint8_t* data, size_t size);  // for the fuzzer
  ~NpzFile();
  NpzFile(const NpzFile&) = delete;
  NpzFile& operator=(const NpzFile&) = delete;
  const std::string& path() const { return path_; }
  // One view per member; the name is the member name without ".npy". Stored members point into
  // the mapping, deflated ones into buffers this object owns.
  const std::vector<TensorView>& tensors() const { return tensors_; }

 private:
  void parse(const uint8_t* data, size_t size);
  std::string path_;
  std::unique_ptr<MappedFile> map_;
  std::vector<std::vector<uint8_t>> owned_;
  std::vector<TensorView> tensors_;
};

}  // namespace awq
