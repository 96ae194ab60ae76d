// GGUF v3 writer: header and tensor infos are built in memory (small), tensor bytes are streamed
// into a temporary file that commit() fsyncs and renames into place.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "awq/error.h"
#include "awq/fsutil.h"
#include "awq/gguf.h"
#include "io/temp_registry.h"

namespace awq {
namespace {

template <class T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void put_str(std::string& s, const std::string& v) {
  put<uint64_t>(s, v.size());
  s += v;
}

void put_scalar(std::string& s, const GgufValue& v, GgufType t) {
  switch (t) {
    case GgufType::U8: put<uint8_t>(s, uint8_t(v.u)); break;
    case GgufType::I8: put<int8_t>(s, int8_t(v.i)); break;
    case GgufType::U16: put<uint16_t>(s, uint16_t(v.u)); break;
    case GgufType::I16: put<int16_t>(s, int16_t(v.i)); break;
    case GgufType::U32: put<uint32_t>(s, uint32_t(v.u)); break;
    case GgufType::I32: put<int32_t>(s, int32_t(v.i)); break;
    case GgufType::U64: put<uint64_t>(s, v.u); break;
    case GgufType::I64: put<int64_t>(s, v.i); break;
    case GgufType::F32: put<float>(s, float(v.f)); break;
    case GgufType::F64: put<double>(s, v.f); break;
    case GgufType::BOOL: put<uint8_t>(s, v.b ? 1 : 0); break;
    case GgufType::STRING: put_str(s, v.s); break;
    case GgufType::ARRAY: throw Error("GGUF writer: nested arrays are not supported");
  }
}

}  // namespace

GgufWriter::GgufWriter(std::string path, uint32_t alignment) : path_(std::move(path)), alignment_(alignment) {
  if (alignment_ == 0 || (alignment_ & (alignment_ - 1))) throw Error(path_ + ": alignment must be a power of two");
  remove_stale_file_temporaries(path_);  // a run killed with -9 left its temporary of this file
  tmp_ = temp_file_for(path_);
  temp_slot_ = temp_registry::try_add(std::filesystem::absolute(tmp_).string());  // before it exists
  ::unlink(tmp_.c_str());  // a leftover of an earlier process with our pid; never followed (O_EXCL)
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    temp_registry::remove(temp_slot_);
    fail(path_, "", std::string("cannot create a temporary file beside it: ") + std::strerror(errno));
  }
  if (alignment_ != 32) add_u32("general.alignment", alignment_);
}

GgufWriter::~GgufWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
  temp_registry::remove(temp_slot_);
}

void GgufWriter::add(const std::string& key, const GgufValue& v) {
  if (data_started_) throw Error(path_ + ": metadata added after the data began (internal error)");
  put_str(header_, key);
  put<uint32_t>(header_, uint32_t(v.type));
  if (v.type == GgufType::ARRAY) {
    put<uint32_t>(header_, uint32_t(v.elem));
    put<uint64_t>(header_, v.arr.size());
    for (const auto& e : v.arr) put_scalar(header_, e, v.elem);
  } else {
    put_scalar(header_, v, v.type);
  }
  ++n_kv_;
}

void GgufWriter::add_string(const std::string& key, const std::string& s) {
  GgufValue v;
  v.type = GgufType::STRING;
  v.s = s;
  add(key, v);
}
void GgufWriter::add_u32(const std::string& key, uint32_t x) {
  GgufValue v;
  v.type = GgufType::U32;
  v.u = x;
  add(key, v);
}
void GgufWriter::add_i32(const std::string& key, int32_t x) {
  GgufValue v;
  v.type = GgufType::I32;
  v.i = x;
  add(key, v);
}
void GgufWriter::add_f32(const std::string& key, float x) {
  GgufValue v;
  v.type = GgufType::F32;
  v.f = x;
  add(key, v);
}
void GgufWriter::add_bool(const std::string& key, bool x) {
  GgufValue v;
  v.type = GgufType::BOOL;
  v.b = x;
  add(key, v);
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type) {
  if (data_started_) throw Error(path_ + ": tensor added after the data began (internal error)");
  if (name.size() > 63) fail(path_, name, "name is longer than ggml's 63-byte limit");
  int64_t numel = 1;
  for (int64_t d : ne) numel *= d;
  size_t nbytes;
  try {
    nbytes = ggml_nbytes(type, numel);
  } catch (const Error& e) {
    fail(path_, name, e.what());
  }
  tensors_.push_back({name, std::move(ne), type, nbytes});
}

void GgufWriter::write_raw(const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd_, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail(output_path_for_errors(tmp_), "", std::string("write failed: ") + std::strerror(errno));
    }
    c += w;
    n -= size_t(w);
    written_ += uint64_t(w);
  }
}

void GgufWriter::begin_data() {
  std::string h;
  h.reserve(header_.size() + 64);
  h.append("GGUF", 4);
  put<uint32_t>(h, 3);
  put<uint64_t>(h, tensors_.size());
  put<uint64_t>(h, n_kv_);
  h += header_;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_str(h, t.name);
    put<uint32_t>(h, uint32_t(t.ne.size()));
    for (int64_t d : t.ne) put<int64_t>(h, d);
    put<uint32_t>(h, uint32_t(t.type));
    put<uint64_t>(h, offset);
    offset += (t.nbytes + alignment_ - 1) / alignment_ * alignment_;
  }
  h.append((alignment_ - h.size() % alignment_) % alignment_, '\0');
  write_raw(h.data(), h.size());
  header_.clear();
  data_started_ = true;
  finish_tensor_if_complete();
}

void GgufWriter::finish_tensor_if_complete() {
  while (current_ < tensors_.size() && current_bytes_ == tensors_[current_].nbytes) {
    const size_t pad = (alignment_ - current_bytes_ % alignment_) % alignment_;
    static const char zeros[256] = {};
    write_raw(zeros, pad);  // every tensor padded, the last one too (as gguf.cpp writes)
    ++current_;
    current_bytes_ = 0;
  }
}

void GgufWriter::append(const void* bytes, size_t n) {
  if (!data_started_) throw Error(path_ + ": tensor data before begin_data() (internal error)");
  const char* c = static_cast<const char*>(bytes);
  while (n > 0) {
    if (current_ >= tensors_.size()) fail(path_, "", "more tensor bytes than the tensor infos declare (internal error)");
    const size_t take = std::min(n, tensors_[current_].nbytes - current_bytes_);
    write_raw(c, take);
    c += take;
    n -= take;
    current_bytes_ += take;
    finish_tensor_if_complete();
  }
}

void GgufWriter::commit() {
  if (!data_started_) begin_data();
  if (current_ != tensors_.size())
    fail(path_, tensors_[current_].name, "tensor data incomplete at commit (internal error)");
  if (::fsync(fd_) != 0) fail(output_path_for_errors(tmp_), "", std::string("fsync failed: ") + std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
  temp_registry::begin_commit(temp_slot_);
  publish_file(tmp_, path_, replace_);
  committed_ = true;
  temp_registry::remove(temp_slot_);
  temp_slot_ = -1;
  const auto dir = std::filesystem::path(path_).parent_path();
  fsync_dir(dir.empty() ? "." : dir.string());
}

}  // namespace awq
