// safetensors files: a validating reader over mmap, and a streaming atomic writer.
// Layout (docs/formats.md §2): u64 LE header length N | N bytes of JSON | byte buffer.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "awq/dtype.h"

namespace awq {

class UnsealedBuffer;

// Read-only memory map of a whole file. Empty files map to a null pointer with size 0.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops the pages spanning [p, p + n) (clamped to this mapping) from the process's resident
  // set: madvise(MADV_DONTNEED) on a read-only file mapping, so nothing is lost; a later read
  // faults the bytes back in from the page cache or the file. For streaming readers that are done
  // with a tensor (a mapped page otherwise stays counted in RSS until the file is closed).
  void release(const void* p, size_t n) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// One tensor inside a mapped file. `data` may be unaligned: read elements with memcpy
// (load_float / load_as_double in dtype.h do).
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  const std::string* file = nullptr;  // path of the file holding it
  // The read-only file mapping `data` lies in; null when it lives in memory the reader owns (a
  // decrypted sealed file, an inflated npz member, an in-memory image), which must not be dropped.
  const MappedFile* mapping = nullptr;

  int64_t numel() const;
  int64_t dim(size_t i) const { return shape.at(i); }
  std::string shape_str() const;  // "[4096, 512]"
};

// Drops a tensor's pages from the resident set once a streaming reader is done with it (see
// MappedFile::release); a no-op for a tensor in owned memory (mapping null), whose bytes would be
// lost. The view stays valid: reading it again faults the pages back in.
void release_pages(const TensorView& t);

// Parses and validates the header: size <= 100 MB, well-formed JSON object, unique names,
// known dtypes, non-negative shapes, numel * dtype size == end - begin (overflow-checked),
// offsets inside the file, tensors covering the buffer contiguously with no gap or overlap,
// `__metadata__` a string-to-string map. Every failure throws awq::Error naming the file.
class SafetensorsFile {
 public:
  static constexpr uint64_t kMaxHeader = 100'000'000;

  explicit SafetensorsFile(const std::string& path);
  // Parses an in-memory image (used by the fuzzer); `data` must outlive the object.
  SafetensorsFile(const std::string& label, const uint8_t* data, size_t size);
  // Parses a decrypted sealed file (include/awq/sealed.h), taking ownership of its buffer.
  SafetensorsFile(const std::string& label, std::unique_ptr<UnsealedBuffer> plain);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;  // views point into this object
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }  // in buffer order
  const TensorView* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has_metadata() const { return has_metadata_; }
  size_t file_size() const { return size_; }

 private:
  void parse(const uint8_t* data, size_t size);
  std::string path_;
  std::unique_ptr<MappedFile> map_;
  std::unique_ptr<UnsealedBuffer> unsealed_;
  size_t size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
  bool has_metadata_ = false;
};

// Opens `path` (a .safetensors file), or, when only `path` + ".enc" exists, that sealed file
// decrypted in memory with the default key (set_default_seal_key); awq::Error naming the file when
// it is sealed and no key was given.
std::unique_ptr<SafetensorsFile> open_tensor_file(const std::string& path);
// True when `path` or its sealed form `path` + ".enc" is a regular file.
bool tensor_file_exists(const std::string& path);

// A tensor to be written: header information plus a callback that produces its bytes.
struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  size_t nbytes() const;
};

// Streaming writer. Usage: construct with every tensor's spec, then call write() once per tensor
// in the same order with exactly nbytes() bytes (possibly in several chunks via append()), then
// commit(). The file goes to a temporary name in the target directory, is fsync'ed and renamed
// into place by commit(); destroying an uncommitted writer removes the temporary file, and so does
// SIGINT/SIGTERM/SIGHUP while it is open (io/temp_registry.h).
// The header is padded with spaces to a multiple of 8 and carries {"format":"pt"} metadata
// (plus any extra given).
class SafetensorsWriter {
 public:
  SafetensorsWriter(std::string path, std::vector<TensorSpec> specs,
                    std::map<std::string, std::string> metadata = {{"format", "pt"}});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  void append(const void* bytes, size_t n);  // next bytes of the current tensor(s)
  // false: commit() refuses (awq::Error) to replace a file that exists at the path by then
  // (publish_file in awq/fsutil.h); true (the default): it replaces it.
  void set_replace(bool replace) { replace_ = replace; }
  void commit();
  size_t total_bytes() const { return data_bytes_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  int temp_slot_ = -1;  // the temporary's entry in the signal-cleanup registry (SIGINT removes it)
  size_t data_bytes_ = 0, written_ = 0;
  bool committed_ = false, replace_ = true;
};

// Size of the data buffer a set of specs needs, with overflow checks.
size_t total_nbytes(const std::vector<TensorSpec>& specs);

}  // namespace awq
