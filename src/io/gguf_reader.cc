// GGUF reader: every count, length and offset is checked against the bytes that remain before it
// is used, so a hostile file costs at most O(file size) memory and never reads outside the map.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "awq/error.h"
#include "awq/gguf.h"
#include "awq/safetensors.h"

namespace awq {

bool is_gguf_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream f(path, std::ios::binary);
  char m[4] = {};
  return f.read(m, 4) && std::memcmp(m, "GGUF", 4) == 0;
}

void refuse_gguf_without_magic(const std::string& path) {
  std::error_code ec;
  const std::string ext = ".gguf";
  if (path.size() < ext.size() || path.compare(path.size() - ext.size(), ext.size(), ext) != 0) return;
  if (!std::filesystem::is_regular_file(path, ec) || is_gguf_file(path)) return;
  const auto size = std::filesystem::file_size(path, ec);
  fail(path, "",
       size < 4 ? "an empty or truncated GGUF file (" + std::to_string(size) + " bytes; a GGUF file starts with the 4-byte magic \"GGUF\")"
                : "named .gguf but not a GGUF file: no \"GGUF\" magic at byte 0 (" + std::to_string(size) + " bytes)");
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // overflow-checked when parsed
  return n;
}

std::string GgufTensorInfo::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16: case GgufType::U32:
    case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}

std::optional<int64_t> GgufValue::as_int() const {
  if (!is_integer()) return std::nullopt;
  if (type == GgufType::U64 || type == GgufType::U32 || type == GgufType::U16 || type == GgufType::U8) {
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return int64_t(u);
  }
  return i;
}

std::string GgufValue::to_string(size_t max_elems) const {
  switch (type) {
    case GgufType::STRING: return "\"" + s + "\"";
    case GgufType::BOOL: return b ? "true" : "false";
    case GgufType::F32: case GgufType::F64: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.9g", f);
      return buf;
    }
    case GgufType::ARRAY: {
      std::string out = "[";
      for (size_t k = 0; k < arr.size() && k < max_elems; ++k) out += (k ? ", " : "") + arr[k].to_string(max_elems);
      if (arr.size() > max_elems) out += ", ... (" + std::to_string(arr.size()) + " items)";
      return out + "]";
    }
    default: return as_int() ? std::to_string(*as_int()) : std::to_string(u);
  }
}

namespace {

constexpr uint64_t kMaxKeyLen = 65536;  // keys are short identifiers; refuse absurd ones early
constexpr size_t kMaxNameLen = 64 - 1;  // GGML_MAX_NAME - 1 (ggml.h), as gguf.cpp enforces

class Cursor {
 public:
  Cursor(const std::string& file, const uint8_t* p, size_t n) : file_(file), p_(p), n_(n) {}
  size_t pos() const { return pos_; }
  size_t left() const { return n_ - pos_; }
  [[noreturn]] void bad(const std::string& what, const std::string& tensor = "") const {
    fail(file_, tensor, what + " (at byte " + std::to_string(pos_) + ")");
  }
  void need(uint64_t bytes, const std::string& what) const {
    if (bytes > left()) bad(what + ": needs " + std::to_string(bytes) + " bytes, only " + std::to_string(left()) + " remain");
  }
  template <class T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const std::string& what, uint64_t max_len) {
    const uint64_t len = read<uint64_t>(what + " length");
    if (len > max_len) bad(what + ": length " + std::to_string(len) + " exceeds " + std::to_string(max_len));
    need(len, what);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(len));
    pos_ += size_t(len);
    return s;
  }

 private:
  const std::string& file_;
  const uint8_t* p_;
  size_t n_, pos_ = 0;
};

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    case GgufType::STRING: return 8;  // at least its length field
    default: return 0;
  }
}

GgufValue read_scalar(Cursor& c, GgufType t, const std::string& key) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufType::U8: v.u = c.read<uint8_t>(key); break;
    case GgufType::I8: v.i = c.read<int8_t>(key); break;
    case GgufType::U16: v.u = c.read<uint16_t>(key); break;
    case GgufType::I16: v.i = c.read<int16_t>(key); break;
    case GgufType::U32: v.u = c.read<uint32_t>(key); break;
    case GgufType::I32: v.i = c.read<int32_t>(key); break;
    case GgufType::U64: v.u = c.read<uint64_t>(key); break;
    case GgufType::I64: v.i = c.read<int64_t>(key); break;
    case GgufType::F32: v.f = c.read<float>(key); break;
    case GgufType::F64: v.f = c.read<double>(key); break;
    case GgufType::BOOL: {
      const uint8_t b = c.read<uint8_t>(key);
      if (b > 1) c.bad("metadata '" + key + "': bool value " + std::to_string(b) + " is neither 0 nor 1");
      v.b = b == 1;
      break;
    }
    case GgufType::STRING: v.s = c.str("metadata '" + key + "' string", UINT64_MAX); break;
    default: c.bad("metadata '" + key + "': unknown value type " + std::to_string(uint32_t(t)));
  }
  return v;
}

GgufValue read_value(Cursor& c, const std::string& key) {
  const uint32_t raw = c.read<uint32_t>("metadata '" + key + "' type");
  const auto t = GgufType(raw);
  if (t != GgufType::ARRAY) {
    if (scalar_size(t) == 0) c.bad("metadata '" + key + "': unknown value type " + std::to_string(raw) + " (known: 0-12)");
    return read_scalar(c, t, key);
  }
  GgufValue v;
  v.type = GgufType::ARRAY;
  const uint32_t raw_elem = c.read<uint32_t>("metadata '" + key + "' array type");
  v.elem = GgufType(raw_elem);
  if (v.elem == GgufType::ARRAY) c.bad("metadata '" + key + "': nested arrays are not supported (gguf.cpp refuses them too)");
  const size_t es = scalar_size(v.elem);
  if (es == 0) c.bad("metadata '" + key + "': unknown array element type " + std::to_string(raw_elem));
  const uint64_t count = c.read<uint64_t>("metadata '" + key + "' array length");
  if (count > c.left() / es)
    c.bad("metadata '" + key + "': array of " + std::to_string(count) + " elements cannot fit in the " + std::to_string(c.left()) +
          " bytes that remain");
  v.arr.reserve(size_t(count));
  for (uint64_t k = 0; k < count; ++k) v.arr.push_back(read_scalar(c, v.elem, key));
  return v;
}

}  // namespace

void GgufFile::release_pages(const GgufTensorInfo& t) const {
  if (map_ && t.nbytes) map_->release(t.data, t.nbytes);
}

GgufFile::GgufFile(const std::string& path) : path_(path), map_(std::make_unique<MappedFile>(path)) {
  parse(map_->data(), map_->size());
}

GgufFile::GgufFile(const std::string& label, const uint8_t* data, size_t size) : path_(label) { parse(data, size); }

GgufFile::~GgufFile() = default;

void GgufFile::parse(const uint8_t* data, size_t size) {
  size_ = size;
  Cursor c(path_, data, size);
  if (size < 4 || std::memcmp(data, "GGUF", 4) != 0) fail(path_, "", "not a GGUF file (expected the magic \"GGUF\" at byte 0)");
  c.read<uint32_t>("magic");
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3)
    fail(path_, "", "GGUF version " + std::to_string(version_) + " is not supported (expected 3, or 2)");
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // Each metadata entry takes >= 12 bytes (key length + type), each tensor info >= 24.
  if (n_kv > c.left() / 12) fail(path_, "", "metadata count " + std::to_string(n_kv) + " cannot fit in the file");
  if (n_tensors > c.left() / 24) fail(path_, "", "tensor count " + std::to_string(n_tensors) + " cannot fit in the file");
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.str("metadata key", kMaxKeyLen);
    if (kv_index_.count(key)) c.bad("duplicate metadata key '" + key + "'");
    GgufValue v = read_value(c, key);
    kv_index_[key] = kv_.size();
    kv_.emplace_back(std::move(key), std::move(v));
  }
  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufType::U32) fail(path_, "", "general.alignment must be a u32");
    if (a->u == 0 || (a->u & (a->u - 1)) != 0)
      fail(path_, "", "general.alignment " + std::to_string(a->u) + " is not a power of two");
    alignment_ = uint32_t(a->u);
  }
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    t.name = c.str("tensor name", UINT64_MAX);
    if (t.name.size() > kMaxNameLen)
      c.bad("tensor name of " + std::to_string(t.name.size()) + " bytes exceeds ggml's limit of 63", t.name.substr(0, 64));
    if (tensor_index_.count(t.name)) c.bad("duplicate tensor name", t.name);
    const uint32_t n_dims = c.read<uint32_t>("tensor dimension count");
    if (n_dims < 1 || n_dims > 4) c.bad("has " + std::to_string(n_dims) + " dimensions (expected 1 to 4)", t.name);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const int64_t ne = c.read<int64_t>("tensor dimension");
      if (ne < 0) c.bad("dimension " + std::to_string(d) + " is negative (" + std::to_string(ne) + ")", t.name);
      if (ne != 0 && numel > uint64_t(std::numeric_limits<int64_t>::max()) / uint64_t(ne))
        c.bad("element count overflows", t.name);
      numel *= uint64_t(ne);
      t.ne.push_back(ne);
    }
    const uint32_t type = c.read<uint32_t>("tensor type");
    const auto info = ggml_type_info(type);
    if (!info) c.bad("unknown ggml type " + std::to_string(type), t.name);
    t.type = GgmlType(type);
    if (t.ne[0] % info->block_size != 0)
      c.bad("row length " + std::to_string(t.ne[0]) + " is not a multiple of " + info->name + "'s block size " +
                std::to_string(info->block_size), t.name);
    const uint64_t blocks = numel / uint64_t(info->block_size);
    if (blocks > UINT64_MAX / info->type_size) c.bad("byte size overflows", t.name);
    t.nbytes = size_t(blocks * info->type_size);
    t.offset = c.read<uint64_t>("tensor offset");
    if (t.offset % alignment_ != 0)
      c.bad("offset " + std::to_string(t.offset) + " is not a multiple of the alignment " + std::to_string(alignment_), t.name);
    tensor_index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  const uint64_t pad = (alignment_ - c.pos() % alignment_) % alignment_;
  data_offset_ = c.pos() + pad;
  if (tensors_.empty()) return;
  if (data_offset_ > size) fail(path_, "", "the data section would start at byte " + std::to_string(data_offset_) + ", past the end of the file");
  const uint64_t data_size = size - data_offset_;
  std::vector<size_t> order(tensors_.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  uint64_t end = 0;
  std::string prev;
  for (size_t k : order) {
    auto& t = tensors_[k];
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      fail(path_, t.name, "data [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) + ") of " + t.shape_str() + " " +
                               ggml_type_name(t.type) + " runs past the end of the data section (" + std::to_string(data_size) + " bytes)");
    if (t.offset < end) fail(path_, t.name, "data overlaps tensor '" + prev + "'");
    end = t.offset + t.nbytes;
    prev = t.name;
    t.data = data + data_offset_ + t.offset;
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(path_, "", "metadata key " + key + " is missing");
  if (v->type != GgufType::STRING) fail(path_, "", "metadata key " + key + " is not a string");
  return v->s;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(path_, "", "metadata key " + key + " is missing");
  const auto i = v->as_int();
  if (!i) fail(path_, "", "metadata key " + key + " is not an integer in range (found " + v->to_string() + ")");
  return *i;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(path_, "", "metadata key " + key + " is missing");
  if (v->type == GgufType::F32 || v->type == GgufType::F64) return v->f;
  if (const auto i = v->as_int()) return double(*i);
  fail(path_, "", "metadata key " + key + " is not a number (found " + v->to_string() + ")");
}

const GgufTensorInfo* GgufFile::tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace awq
