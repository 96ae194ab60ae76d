#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "awq/error.h"
#include "awq/safetensors.h"
#include "awq/sealed.h"

#include <filesystem>

namespace awq {

using nlohmann::json;

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated against overflow when parsed
  return n;
}

std::string TensorView::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafetensorsFile::SafetensorsFile(const std::string& path)
    : path_(path), map_(std::make_unique<MappedFile>(path)) {
  parse(map_->data(), map_->size());
  for (TensorView& t : tensors_) t.mapping = map_.get();
}

SafetensorsFile::SafetensorsFile(const std::string& label, const uint8_t* data, size_t size)
    : path_(label) {
  parse(data, size);
}

SafetensorsFile::SafetensorsFile(const std::string& label, std::unique_ptr<UnsealedBuffer> plain)
    : path_(label), unsealed_(std::move(plain)) {
  parse(unsealed_->data(), unsealed_->size());
}

SafetensorsFile::~SafetensorsFile() = default;

std::unique_ptr<SafetensorsFile> open_tensor_file(const std::string& path) {
  std::error_code ec;
  const std::string sealed = path + kSealedSuffix;
  if (std::filesystem::is_regular_file(path, ec) || !std::filesystem::is_regular_file(sealed, ec))
    return std::make_unique<SafetensorsFile>(path);
  const auto& key = default_seal_key();
  if (!key) fail(sealed, "", "is encrypted: pass --key-file KEY_FILE or set AWQ_KEY_FILE");
  const std::string name = std::filesystem::path(path).filename().string();
  return std::make_unique<SafetensorsFile>(sealed, std::make_unique<UnsealedBuffer>(sealed, name, *key));
}

bool tensor_file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec) || std::filesystem::is_regular_file(path + kSealedSuffix, ec);
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

namespace {

// Multiplies with an overflow check against the size_t range.
bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  *out = a * b;
  return true;
}

struct RawEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

RawEntry parse_entry(const std::string& file, const std::string& name, const json& v) {
  auto bad = [&](const std::string& what) { fail(file, name, what); };
  if (!v.is_object()) bad("header entry is not a JSON object");
  RawEntry e;
  e.name = name;
  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) bad("missing or non-string \"dtype\"");
  auto parsed = parse_dtype(dt->get<std::string>());
  if (!parsed) bad("unknown dtype \"" + dt->get<std::string>() + "\"");
  e.dtype = *parsed;
  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) bad("missing or non-array \"shape\"");
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned()) bad("shape " + sh->dump() + " has a non-integer or negative entry");
    uint64_t dv = d.get<uint64_t>();
    if (dv > uint64_t(std::numeric_limits<int64_t>::max()) || !mul_ok(numel, dv, &numel))
      bad("shape " + sh->dump() + " overflows");
    e.shape.push_back(int64_t(dv));
  }
  uint64_t bytes;
  if (!mul_ok(numel, dtype_size(e.dtype), &bytes)) bad("shape " + sh->dump() + " overflows in bytes");
  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    bad("\"data_offsets\" must be two non-negative integers");
  e.begin = (*off)[0].get<uint64_t>();
  e.end = (*off)[1].get<uint64_t>();
  if (e.end < e.begin) bad("data_offsets end < begin");
  if (e.end - e.begin != bytes)
    bad("data_offsets span " + std::to_string(e.end - e.begin) + " bytes but dtype " +
        std::string(dtype_name(e.dtype)) + " x shape " + sh->dump() + " needs " +
        std::to_string(bytes));
  for (const auto& [k, _] : v.items())
    if (k != "dtype" && k != "shape" && k != "data_offsets") bad("unexpected header key \"" + k + "\"");
  return e;
}

}  // namespace

void SafetensorsFile::parse(const uint8_t* data, size_t size) {
  size_ = size;
  if (size < 8) fail(path_, "", "file of " + std::to_string(size) + " bytes is too short for a safetensors header");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > kMaxHeader) fail(path_, "", "header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > size - 8)
    fail(path_, "", "header length " + std::to_string(n) + " runs past the end of the file (" +
                        std::to_string(size) + " bytes): truncated?");
  if (n < 2 || data[8] != '{') fail(path_, "", "header does not start with '{'");
  const char* hb = reinterpret_cast<const char*>(data + 8);

  std::set<std::string> seen;
  std::string dup;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::key && depth == 1) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!seen.insert(k).second && dup.empty()) dup = k;
    }
    return true;
  };
  json h;
  try {
    h = json::parse(hb, hb + n, cb);
  } catch (const json::exception& e) {
    fail(path_, "", std::string("header is not valid JSON: ") + e.what());
  }
  if (!dup.empty()) fail(path_, dup, "appears twice in the header");
  if (!h.is_object()) fail(path_, "", "header is not a JSON object");

  std::vector<RawEntry> entries;
  for (const auto& [k, v] : h.items()) {
    if (k == "__metadata__") {
      if (!v.is_object()) fail(path_, "", "__metadata__ is not an object");
      for (const auto& [mk, mv] : v.items()) {
        if (!mv.is_string()) fail(path_, "", "__metadata__ value for \"" + mk + "\" is not a string");
        metadata_[mk] = mv.get<std::string>();
      }
      has_metadata_ = true;
      continue;
    }
    entries.push_back(parse_entry(path_, k, v));
  }
  std::sort(entries.begin(), entries.end(), [](const RawEntry& a, const RawEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const uint64_t buf = size - 8 - n;
  uint64_t pos = 0;
  for (const auto& e : entries) {
    if (e.begin != pos)
      fail(path_, e.name, e.begin > pos
          ? "gap in the data buffer: bytes " + std::to_string(pos) + ".." + std::to_string(e.begin) + " belong to no tensor"
          : "overlaps the previous tensor (data_offsets begin " + std::to_string(e.begin) + " < " + std::to_string(pos) + ")");
    if (e.end > buf)
      fail(path_, e.name, "data_offsets end " + std::to_string(e.end) + " is past the data buffer (" +
                              std::to_string(buf) + " bytes): truncated file?");
    pos = e.end;
  }
  if (pos != buf)
    fail(path_, "", "data buffer has " + std::to_string(buf) + " bytes but tensors cover " + std::to_string(pos));
  const uint8_t* base = data + 8 + n;
  tensors_.reserve(entries.size());
  for (auto& e : entries) {
    TensorView t;
    t.name = std::move(e.name);
    t.dtype = e.dtype;
    t.shape = std::move(e.shape);
    t.data = base + e.begin;
    t.nbytes = size_t(e.end - e.begin);
    t.file = &path_;
    by_name_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
}

}  // namespace awq
