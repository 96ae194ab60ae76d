#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "awq/error.h"
#include "awq/fsutil.h"
#include "awq/safetensors.h"
#include "io/temp_registry.h"

namespace awq {

size_t TensorSpec::nbytes() const {
  size_t n = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0 || (d != 0 && n > std::numeric_limits<size_t>::max() / size_t(d)))
      fail("", name, "shape overflows");
    n *= size_t(d);
  }
  return n;
}

size_t total_nbytes(const std::vector<TensorSpec>& specs) {
  size_t t = 0;
  for (const auto& s : specs) t += s.nbytes();
  return t;
}

namespace {
void write_all(int fd, const void* p, size_t n, const std::string& path) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail(output_path_for_errors(path), "", std::string("write failed: ") + std::strerror(errno));
    }
    c += w;
    n -= size_t(w);
  }
}
}  // namespace

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorSpec> specs,
                                     std::map<std::string, std::string> metadata)
    : path_(std::move(path)) {
  nlohmann::ordered_json h;
  if (!metadata.empty()) h["__metadata__"] = metadata;
  size_t off = 0;
  for (const auto& s : specs) {
    if (h.contains(s.name)) fail(path_, s.name, "written twice");
    const size_t n = s.nbytes();
    h[s.name] = {{"dtype", std::string(dtype_name(s.dtype))}, {"shape", s.shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  data_bytes_ = off;
  std::string hs = h.dump();
  while (hs.size() % 8) hs.push_back(' ');
  remove_stale_file_temporaries(path_);  // a run killed with -9 left its temporary of this file
  tmp_ = temp_file_for(path_);
  temp_slot_ = temp_registry::try_add(std::filesystem::absolute(tmp_).string());  // before it exists
  ::unlink(tmp_.c_str());  // a leftover of an earlier process with our pid; never followed (O_EXCL)
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  try {
    if (fd_ < 0) fail(output_path_for_errors(path_), "", std::string("cannot create a temporary file beside it: ") + std::strerror(errno));
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(hs.size()) >> (8 * i));
    write_all(fd_, len, 8, tmp_);
    write_all(fd_, hs.data(), hs.size(), tmp_);
  } catch (...) {  // no destructor runs for a throwing constructor: undo here
    if (fd_ >= 0) ::close(fd_), ::unlink(tmp_.c_str());
    temp_registry::remove(temp_slot_);
    throw;
  }
}

void SafetensorsWriter::append(const void* bytes, size_t n) {
  if (written_ + n > data_bytes_) fail(path_, "", "internal: more tensor bytes written than declared");
  write_all(fd_, bytes, n, tmp_);
  written_ += n;
}

void SafetensorsWriter::commit() {
  if (written_ != data_bytes_)
    fail(path_, "", "internal: " + std::to_string(written_) + " of " + std::to_string(data_bytes_) + " bytes written");
  if (::fsync(fd_) != 0) fail(output_path_for_errors(tmp_), "", std::string("fsync failed: ") + std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
  temp_registry::begin_commit(temp_slot_);
  publish_file(tmp_, path_, replace_);
  committed_ = true;
  temp_registry::remove(temp_slot_);
  temp_slot_ = -1;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
  temp_registry::remove(temp_slot_);
}

}  // namespace awq
