// .npz reader: zip central directory -> local headers -> .npy members (v1-v3 headers).
#include "awq/npz.h"

#include <zlib.h>

#include <cstring>
#include <limits>
#include <regex>

#include "awq/error.h"

namespace awq {
namespace {

uint32_t rd16(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }
uint32_t rd32(const uint8_t* p) { return rd16(p) | rd16(p + 2) << 16; }
uint64_t rd64(const uint8_t* p) { return uint64_t(rd32(p)) | uint64_t(rd32(p + 4)) << 32; }

struct Member {
  std::string name;
  uint32_t method;
  uint64_t csize, usize, local_off;
};

std::vector<Member> central_directory(const std::string& file, const uint8_t* d, size_t n) {
  if (n < 22) fail(file, "", "too short to be a zip/npz archive");
  size_t eocd = std::string::npos;
  const size_t lo = n > 22 + 65535 ? n - 22 - 65535 : 0;
  for (size_t i = n - 22 + 1; i-- > lo;)
    if (rd32(d + i) == 0x06054b50) { eocd = i; break; }
  if (eocd == std::string::npos) fail(file, "", "no zip end-of-central-directory record: not an npz, or truncated");
  uint64_t count = rd16(d + eocd + 10), cd_size = rd32(d + eocd + 12), cd_off = rd32(d + eocd + 16);
  if ((count == 0xffff || cd_off == 0xffffffff) && eocd >= 20 && rd32(d + eocd - 20) == 0x07064b50) {
    const uint64_t z64 = rd64(d + eocd - 20 + 8);
    if (z64 > n - 56 || rd32(d + z64) != 0x06064b50) fail(file, "", "bad zip64 end-of-central-directory record");
    count = rd64(d + z64 + 32);
    cd_size = rd64(d + z64 + 40);
    cd_off = rd64(d + z64 + 48);
  }
  if (cd_off > n || cd_size > n - cd_off) fail(file, "", "zip central directory lies outside the file");
  std::vector<Member> out;
  size_t p = size_t(cd_off);
  const size_t end = size_t(cd_off + cd_size);
  for (uint64_t i = 0; i < count; ++i) {
    if (p + 46 > end || rd32(d + p) != 0x02014b50) fail(file, "", "corrupt zip central directory entry " + std::to_string(i));
    Member m;
    m.method = rd16(d + p + 10);
    m.csize = rd32(d + p + 20);
    m.usize = rd32(d + p + 24);
    const size_t nl = rd16(d + p + 28), xl = rd16(d + p + 30), cl = rd16(d + p + 32);
    m.local_off = rd32(d + p + 42);
    if (p + 46 + nl + xl + cl > end) fail(file, "", "zip central directory entry runs past its end");
    m.name.assign(reinterpret_cast<const char*>(d + p + 46), nl);
    // zip64 extra field: the 0xffffffff fields follow in order usize, csize, offset.
    for (size_t x = p + 46 + nl; x + 4 <= p + 46 + nl + xl;) {
      const uint32_t id = rd16(d + x), sz = rd16(d + x + 2);
      if (x + 4 + sz > p + 46 + nl + xl) break;
      if (id == 1) {
        size_t q = x + 4;
        auto take = [&](uint64_t& v) {
          if (v == 0xffffffff && q + 8 <= x + 4 + sz) { v = rd64(d + q); q += 8; }
        };
        take(m.usize);
        take(m.csize);
        take(m.local_off);
      }
      x += 4 + sz;
    }
    out.push_back(m);
    p += 46 + nl + xl + cl;
  }
  return out;
}

struct NpyHeader {
  DType dtype;
  std::vector<int64_t> shape;
  size_t data_off;
};

NpyHeader parse_npy(const std::string& file, const std::string& name, const uint8_t* d, size_t n) {
  if (n < 10 || std::memcmp(d, "\x93NUMPY", 6) != 0) fail(file, name, "member is not a .npy array");
  const int major = d[6];
  size_t hl, hs;
  if (major == 1) { hl = rd16(d + 8); hs = 10; }
  else if (major == 2 || major == 3) { if (n < 12) fail(file, name, "truncated .npy header"); hl = rd32(d + 8); hs = 12; }
  else fail(file, name, "unknown .npy version " + std::to_string(major));
  if (hl > n - hs) fail(file, name, ".npy header runs past the member");
  const std::string h(reinterpret_cast<const char*>(d + hs), hl);
  static const std::regex descr_re(R"('descr'\s*:\s*'([<>|=])([a-zA-Z])(\d+)')");
  static const std::regex fortran_re(R"('fortran_order'\s*:\s*(True|False))");
  static const std::regex shape_re(R"('shape'\s*:\s*\(([^)]*)\))");
  std::smatch m;
  if (!std::regex_search(h, m, descr_re)) fail(file, name, ".npy header has no simple 'descr' (structured dtypes are not supported)");
  const char endian = m[1].str()[0], kind = m[2].str()[0];
  const std::string bytes = m[3].str();
  if (endian == '>' && bytes != "1") fail(file, name, "big-endian arrays are not supported");
  static const std::map<std::string, DType> kTypes = {
      {"f2", DType::F16}, {"f4", DType::F32}, {"f8", DType::F64}, {"i1", DType::I8}, {"i2", DType::I16},
      {"i4", DType::I32}, {"i8", DType::I64}, {"u1", DType::U8}, {"u2", DType::U16}, {"u4", DType::U32},
      {"u8", DType::U64}, {"b1", DType::BOOL}};
  auto it = kTypes.find(std::string(1, kind) + bytes);
  if (it == kTypes.end()) fail(file, name, "unsupported .npy dtype '" + m[0].str() + "'");
  NpyHeader out{it->second, {}, hs + hl};
  if (!std::regex_search(h, m, fortran_re)) fail(file, name, ".npy header has no 'fortran_order'");
  if (m[1] == "True") fail(file, name, "Fortran-ordered arrays are not supported");
  if (!std::regex_search(h, m, shape_re)) fail(file, name, ".npy header has no 'shape'");
  const std::string sh = m[1].str();
  size_t pos = 0;
  uint64_t numel = 1;
  while (pos < sh.size()) {
    while (pos < sh.size() && (sh[pos] == ' ' || sh[pos] == ',')) ++pos;
    if (pos >= sh.size()) break;
    size_t e = pos;
    while (e < sh.size() && sh[e] >= '0' && sh[e] <= '9') ++e;
    if (e == pos || e - pos > 15) fail(file, name, "bad .npy shape (" + sh + ")");
    const int64_t v = std::stoll(sh.substr(pos, e - pos));
    if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / uint64_t(v)) fail(file, name, "shape overflows");
    numel *= uint64_t(v);
    out.shape.push_back(v);
    pos = e;
  }
  return out;
}

}  // namespace

NpzFile::NpzFile(const std::string& path) : path_(path), map_(std::make_unique<MappedFile>(path)) {
  parse(map_->data(), map_->size());
  const auto lo = reinterpret_cast<uintptr_t>(map_->data()), hi = lo + map_->size();
  for (TensorView& t : tensors_)  // stored members lie in the mapping; inflated ones in owned_
    if (reinterpret_cast<uintptr_t>(t.data) >= lo && reinterpret_cast<uintptr_t>(t.data) < hi) t.mapping = map_.get();
}

NpzFile::NpzFile(const std::string& label, const uint8_t* data, size_t size) : path_(label) { parse(data, size); }

NpzFile::~NpzFile() = default;

void NpzFile::parse(const uint8_t* d, size_t n) {
  const auto members = central_directory(path_, d, n);
  owned_.reserve(members.size());
  for (const auto& m : members) {
    std::string name = m.name;
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
    if (m.local_off > n || n - m.local_off < 30 || rd32(d + m.local_off) != 0x04034b50)
      fail(path_, name, "zip local header missing or outside the file");
    const size_t start = size_t(m.local_off) + 30 + rd16(d + m.local_off + 26) + rd16(d + m.local_off + 28);
    if (start > n || m.csize > n - start) fail(path_, name, "member data runs past the end of the file: truncated?");
    const uint8_t* mem = d + start;
    size_t mem_size = size_t(m.csize);
    if (m.method == 8) {
      // Deflate expands at most ~1032:1; a larger claim is corrupt (and must not drive an allocation).
      if (m.usize > m.csize * 1032 + 1024) fail(path_, name, "member claims an implausible uncompressed size");
      std::vector<uint8_t> buf(size_t(m.usize));
      z_stream zs{};
      if (inflateInit2(&zs, -15) != Z_OK) fail(path_, name, "zlib init failed");
      zs.next_in = const_cast<Bytef*>(mem);
      zs.avail_in = uInt(std::min<size_t>(mem_size, std::numeric_limits<uInt>::max()));
      zs.next_out = buf.data();
      zs.avail_out = uInt(std::min<size_t>(buf.size(), std::numeric_limits<uInt>::max()));
      const int rc = inflate(&zs, Z_FINISH);
      const size_t produced = zs.total_out;
      inflateEnd(&zs);
      if (rc != Z_STREAM_END || produced != buf.size())
        fail(path_, name, "deflated member is corrupt or its size does not match the zip directory");
      owned_.push_back(std::move(buf));
      mem = owned_.back().data();
      mem_size = owned_.back().size();
    } else if (m.method != 0) {
      fail(path_, name, "unsupported zip compression method " + std::to_string(m.method));
    } else if (m.csize != m.usize) {
      fail(path_, name, "stored member with compressed size != uncompressed size");
    }
    const NpyHeader h = parse_npy(path_, name, mem, mem_size);
    TensorView t;
    t.name = name;
    t.dtype = h.dtype;
    t.shape = h.shape;
    t.data = mem + h.data_off;
    t.nbytes = mem_size - h.data_off;
    t.file = &path_;
    if (size_t(t.numel()) * dtype_size(t.dtype) != t.nbytes)
      fail(path_, name, "array data has " + std::to_string(t.nbytes) + " bytes, shape " + t.shape_str() + " needs " +
                            std::to_string(size_t(t.numel()) * dtype_size(t.dtype)));
    tensors_.push_back(std::move(t));
  }
}

}  // namespace awq
