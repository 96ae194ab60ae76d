// GGUF v3 (llama.cpp's single-file model format): a validating reader over mmap, ggml's block
// types and their dequantization, and a streaming atomic writer. Byte layout: docs/GGUF.md.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace awq {

class MappedFile;

// ggml_type numbers as stored in tensor infos (ggml.h). Only the ones named here are known; the
// reader refuses any other number.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30,
};

struct GgmlTypeInfo {
  const char* name;     // "q4_K", as ggml names it
  int64_t block_size;   // elements per block
  size_t type_size;     // bytes per block
  bool dequantizable;   // dequantize_ggml supports it
};
// Facts of a known type; nullopt for numbers ggml does not define (or we do not know).
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t type);
std::string ggml_type_name(GgmlType t);

// Dequantizes `n` elements (a multiple of the block size) of type `t` at `src` into f32, with
// ggml's reference arithmetic (ggml-quants.c dequantize_row_*), bit for bit. Supports Q4_0, Q4_1,
// Q8_0, Q4_K, Q6_K, F16, BF16, F32; throws awq::Error for others.
void dequantize_ggml(GgmlType t, const uint8_t* src, int64_t n, float* dst);

// Metadata value types (gguf.h gguf_type).
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  U64 = 10, I64 = 11, F64 = 12,
};

// One metadata value. Integers are widened into i (signed) or u (unsigned), floats into f.
struct GgufValue {
  GgufType type = GgufType::U32;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  bool b = false;
  std::string s;
  GgufType elem = GgufType::U32;  // arrays: element type
  std::vector<GgufValue> arr;     // arrays: elements (no nested arrays of arrays beyond one level)

  bool is_integer() const;
  // The value as a signed integer; nullopt when it is not an integer or does not fit.
  std::optional<int64_t> as_int() const;
  std::string to_string(size_t max_elems = 8) const;  // for `inspect`
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the contiguous (innermost) dimension
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;      // relative to the data section
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  int64_t numel() const;
  std::string shape_str() const;  // "[ne0, ne1]" in ggml order
};

// Parses and validates a GGUF file: magic, version 2 or 3, counts bounded by the file size, every
// key and string length inside the file, known value types, arrays nested at most once, unique
// keys and tensor names, general.alignment a power of two (u32), 1-4 dims with ne >= 0, known
// tensor types with ne[0] a multiple of the block size, element and byte counts overflow-checked,
// offsets aligned and each tensor inside the file with no overlap. Failures: awq::Error naming the
// file, the key or tensor, and what was expected.
class GgufFile {
 public:
  explicit GgufFile(const std::string& path);
  GgufFile(const std::string& label, const uint8_t* data, size_t size);  // in-memory (fuzzer)
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  size_t file_size() const { return size_; }
  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  // Typed accessors: awq::Error naming the file and key when missing or of another type.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;  // float or integer
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }  // in file order
  const GgufTensorInfo* tensor(const std::string& name) const;
  // Drops a tensor's pages from the resident set once a streaming reader has copied what it needs
  // (MappedFile::release: the view stays valid); a no-op for an in-memory image.
  void release_pages(const GgufTensorInfo& t) const;

 private:
  void parse(const uint8_t* data, size_t size);
  std::string path_;
  std::unique_ptr<MappedFile> map_;
  size_t size_ = 0;
  uint32_t version_ = 0, alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_, tensor_index_;
  std::vector<GgufTensorInfo> tensors_;
};

// Streaming GGUF v3 writer. Add every metadata value and tensor info first, then call
// begin_data(), then append() exactly each tensor's bytes in the order added (padding between
// tensors is written for you), then commit(). The file is written under a temporary name in the
// target directory, fsync'ed and renamed by commit(); an uncommitted writer removes it, and so
// does SIGINT/SIGTERM/SIGHUP while it is open (io/temp_registry.h).
class GgufWriter {
 public:
  explicit GgufWriter(std::string path, uint32_t alignment = 32);
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  void add(const std::string& key, const GgufValue& v);
  void add_string(const std::string& key, const std::string& s);
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  // ne in ggml order (ne[0] innermost); nbytes follows from the type.
  void add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type);
  void begin_data();
  void append(const void* bytes, size_t n);
  // false: commit() refuses (awq::Error) to replace a file that exists at the path by then
  // (publish_file in awq/fsutil.h); true (the default): it replaces it.
  void set_replace(bool replace) { replace_ = replace; }
  void commit();
  uint64_t bytes_written() const { return written_; }

 private:
  void write_raw(const void* p, size_t n);
  void finish_tensor_if_complete();
  std::string path_, tmp_;
  int fd_ = -1;
  int temp_slot_ = -1;  // the temporary's entry in the signal-cleanup registry (SIGINT removes it)
  uint32_t alignment_;
  std::string header_;
  uint64_t n_kv_ = 0;
  struct Pending {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    size_t nbytes;
  };
  std::vector<Pending> tensors_;
  size_t current_ = 0, current_bytes_ = 0;
  uint64_t written_ = 0;
  bool data_started_ = false, committed_ = false, replace_ = true;
};

// A byte-level pre-tokenizer llama.cpp knows by name (tokenizer.ggml.pre): its split regex ("" =
// ByteLevel's built-in GPT-2 regex) and whether llama.cpp emits a word that is itself a token
// without applying merges (ignore_merges). The first entry of a regex is the name export writes.
struct GgufPreTokenizer {
  std::string name, regex;
  bool ignore_merges = false;
};
const std::vector<GgufPreTokenizer>& gguf_pre_tokenizers();

// True when `path` is a regular file starting with the GGUF magic (how every command tells a .gguf
// from a model directory).
bool is_gguf_file(const std::string& path);
// Throws awq::Error naming `path` when it is a regular file named *.gguf without the "GGUF" magic
// (empty or truncated: under 4 bytes; else not a GGUF file), so that it is not reported as some
// other kind of file; does nothing otherwise.
void refuse_gguf_without_magic(const std::string& path);

// Bytes of a tensor of `numel` elements of type t (numel a multiple of the block size); throws
// awq::Error on overflow or an unknown type.
size_t ggml_nbytes(GgmlType t, int64_t numel);

}  // namespace awq
