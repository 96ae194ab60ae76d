// AES-256-GCM sealed tensor files (layout in include/awq/sealed.h and docs/encryption.md).
#include "awq/sealed.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "awq/error.h"
#include "awq/fsutil.h"
#include "awq/safetensors.h"

namespace awq {
namespace {

constexpr char kMagic[8] = {'A', 'W', 'Q', 'S', 'E', 'A', 'L', '1'};
constexpr size_t kHeader = 64, kTag = 16;
constexpr const char* kKeyPrefix = "awq-key-v1 ";

struct Header {
  uint32_t version = 1, chunk = 0;
  uint64_t size = 0;
  uint8_t salt[16] = {};
};

void put_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }  // little-endian hosts only (x86-64)
void put_u64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t get_u32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint64_t get_u64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }

std::array<uint8_t, kHeader> encode_header(const Header& h) {
  std::array<uint8_t, kHeader> b{};
  std::memcpy(b.data(), kMagic, 8);
  put_u32(b.data() + 8, h.version);
  put_u32(b.data() + 12, h.chunk);
  put_u64(b.data() + 16, h.size);
  std::memcpy(b.data() + 24, h.salt, 16);
  return b;
}

uint64_t chunk_count(const Header& h) { return h.size == 0 ? 1 : (h.size + h.chunk - 1) / h.chunk; }

// Parses and checks the header; `file_size` must match the size the header implies.
Header decode_header(const std::string& label, const uint8_t* p, size_t file_size) {
  if (file_size < kHeader) fail(label, "", "not a sealed awq file (" + std::to_string(file_size) + " bytes, header is 64)");
  if (std::memcmp(p, kMagic, 8) != 0) fail(label, "", "not a sealed awq file (no AWQSEAL1 magic)");
  Header h;
  h.version = get_u32(p + 8);
  h.chunk = get_u32(p + 12);
  h.size = get_u64(p + 16);
  std::memcpy(h.salt, p + 24, 16);
  if (h.version != 1) fail(label, "", "sealed file version " + std::to_string(h.version) + " (this build reads 1)");
  if (h.chunk < 4096 || h.chunk > (1u << 26) || (h.chunk & (h.chunk - 1)))
    fail(label, "", "invalid chunk size " + std::to_string(h.chunk) + " (a power of two in [4 KiB, 64 MiB])");
  for (size_t i = 40; i < kHeader; ++i)
    if (p[i]) fail(label, "", "reserved header bytes are not zero");
  const uint64_t n = chunk_count(h);
  if (h.size > (uint64_t(1) << 50)) fail(label, "", "implausible plaintext size " + std::to_string(h.size));
  const uint64_t expect = kHeader + h.size + n * kTag;
  if (file_size < expect)
    fail(label, "", "truncated: " + std::to_string(file_size) + " bytes, the header promises " + std::to_string(expect));
  if (file_size > expect)
    fail(label, "", std::to_string(file_size - expect) + " bytes after the last chunk (expected " + std::to_string(expect) + ")");
  return h;
}

std::array<uint8_t, 32> file_key(const SealKey& key, const uint8_t salt[16]) {
  std::array<uint8_t, 32> out{};
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr);
  size_t len = out.size();
  const char info[] = "awq-seal-v1";
  const bool ok = ctx && EVP_PKEY_derive_init(ctx) > 0 && EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) > 0 &&
                  EVP_PKEY_CTX_set1_hkdf_salt(ctx, salt, 16) > 0 &&
                  EVP_PKEY_CTX_set1_hkdf_key(ctx, key.bytes.data(), int(key.bytes.size())) > 0 &&
                  EVP_PKEY_CTX_add1_hkdf_info(ctx, reinterpret_cast<const unsigned char*>(info), int(sizeof info - 1)) > 0 &&
                  EVP_PKEY_derive(ctx, out.data(), &len) > 0;
  EVP_PKEY_CTX_free(ctx);
  if (!ok || len != out.size()) throw Error("OpenSSL: HKDF-SHA256 failed");
  return out;
}

std::vector<uint8_t> associated_data(const std::array<uint8_t, kHeader>& header, const std::string& name, uint64_t i,
                                     bool final) {
  std::vector<uint8_t> ad(header.begin(), header.end());
  ad.insert(ad.end(), name.begin(), name.end());
  uint8_t tail[9];
  put_u64(tail, i);
  tail[8] = final ? 1 : 0;
  ad.insert(ad.end(), tail, tail + 9);
  return ad;
}

// One AES-256-GCM operation on a chunk. Returns false when decryption fails authentication.
bool gcm(bool encrypt, const std::array<uint8_t, 32>& key, uint64_t index, const std::vector<uint8_t>& ad,
         const uint8_t* in, size_t n, uint8_t* out, uint8_t* tag) {
  uint8_t nonce[12] = {};
  put_u64(nonce, index);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (!ctx) throw Error("OpenSSL: out of memory");
  int len = 0;
  bool ok = EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), nonce, encrypt ? 1 : 0) > 0 &&
            EVP_CipherUpdate(ctx, nullptr, &len, ad.data(), int(ad.size())) > 0;
  size_t done = 0;
  while (ok && done < n) {  // EVP lengths are int: feed at most 1 GiB at a time
    const int step = int(std::min<size_t>(n - done, size_t(1) << 30));
    ok = EVP_CipherUpdate(ctx, out + done, &len, in + done, step) > 0;
    done += size_t(step);
  }
  if (ok && !encrypt) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, int(kTag), tag) > 0;
  if (ok) ok = EVP_CipherFinal_ex(ctx, out + n, &len) > 0;
  if (ok && encrypt) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, int(kTag), tag) > 0;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok && encrypt) throw Error("OpenSSL: AES-256-GCM encryption failed");
  return ok;
}

// Names the tensors stored in plaintext bytes [begin, end) when the safetensors header itself
// was decrypted (it lies before `begin`); "" when unknown.
std::string tensors_in(const uint8_t* plain, uint64_t plain_ok, uint64_t begin, uint64_t end) {
  if (plain_ok < 8) return "";
  const uint64_t n = get_u64(plain);
  if (n > plain_ok - 8 || 8 + n > begin) return "";
  auto j = nlohmann::json::parse(plain + 8, plain + 8 + n, nullptr, false);
  if (!j.is_object()) return "";
  std::string names;
  for (const auto& [k, v] : j.items()) {
    if (k == "__metadata__" || !v.is_object() || !v.contains("data_offsets")) continue;
    const auto& o = v["data_offsets"];
    if (!o.is_array() || o.size() != 2 || !o[0].is_number_unsigned() || !o[1].is_number_unsigned()) continue;
    const uint64_t a = 8 + n + o[0].get<uint64_t>(), b = 8 + n + o[1].get<uint64_t>();
    if (a < end && b > begin) names += (names.empty() ? "" : ", ") + k;
  }
  return names;
}

}  // namespace

size_t unseal_stream(const std::string& label, const uint8_t* data, size_t size, const std::string& name,
                     const SealKey& key, uint8_t* out, const ChunkSink& sink) {
  const Header h = decode_header(label, data, size);
  const auto header = encode_header(h);
  const auto fk = file_key(key, h.salt);
  const uint64_t n = chunk_count(h);
  std::vector<uint8_t> scratch, first;  // first: the plaintext up to the end of the safetensors header
  const uint8_t* p = data + kHeader;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t begin = i * h.chunk, len = std::min<uint64_t>(h.chunk, h.size - begin);
    uint8_t* dst = out ? out + begin : (scratch.resize(len + 16), scratch.data());
    uint8_t tag[kTag];
    std::memcpy(tag, p + len, kTag);
    if (!gcm(false, fk, i, associated_data(header, name, i, i + 1 == n), p, len, dst, tag)) {
      const std::string what = out ? tensors_in(out, begin, begin, begin + len)
                                   : tensors_in(first.data(), first.size(), begin, begin + len);
      fail(label, what, "chunk " + std::to_string(i) + " of " + std::to_string(n) + " (plaintext bytes " +
                            std::to_string(begin) + ".." + std::to_string(begin + len) +
                            ") fails authentication: wrong key, or the file was modified, reordered, truncated "
                            "or renamed (it must be the sealed form of " + name + ")");
    }
    if (!out && (first.size() < 8 || first.size() < 8 + get_u64(first.data())) &&
        first.size() < SafetensorsFile::kMaxHeader + 8)
      first.insert(first.end(), dst, dst + len);  // until the safetensors header is complete
    if (sink) sink(begin, dst, size_t(len));
    p += len + kTag;
  }
  return size_t(h.size);
}

size_t unseal_bytes(const std::string& label, const uint8_t* data, size_t size, const std::string& name,
                    const SealKey& key, uint8_t* out) {
  return unseal_stream(label, data, size, name, key, out, nullptr);
}

void unseal_file(const std::string& sealed_path, const std::string& plain_path, const std::string& name,
                 const SealKey& key) {
  MappedFile in(sealed_path);
  const int fd = ::open(plain_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail(output_path_for_errors(plain_path), "", std::string("cannot create: ") + std::strerror(errno));
  try {
    unseal_stream(sealed_path, in.data(), in.size(), name, key, nullptr, [&](uint64_t, const uint8_t* b, size_t n) {
      while (n) {
        const ssize_t w = ::write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) fail(output_path_for_errors(plain_path), "", std::string("write failed: ") + std::strerror(errno));
        b += w;
        n -= size_t(w);
      }
    });
    if (::fsync(fd) != 0) fail(output_path_for_errors(plain_path), "", "fsync failed");
  } catch (...) {
    ::close(fd);
    std::filesystem::remove(plain_path);  // never leave a partial plaintext behind
    throw;
  }
  ::close(fd);
}

void seal_file(const std::string& plain_path, const std::string& sealed_path, const std::string& name,
               const SealKey& key, uint32_t chunk_size) {
  MappedFile in(plain_path);
  Header h;
  h.chunk = chunk_size;
  h.size = in.size();
  if (RAND_bytes(h.salt, sizeof h.salt) != 1) throw Error("OpenSSL: no random bytes for the salt");
  const auto header = encode_header(h);
  const auto fk = file_key(key, h.salt);
  const std::string tmp = sealed_path + ".awq-tmp-" + std::to_string(getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail(output_path_for_errors(sealed_path), "", std::string("cannot create: ") + std::strerror(errno));
  auto put = [&](const uint8_t* b, size_t n) {
    while (n) {
      const ssize_t w = ::write(fd, b, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        const int e = errno;
        ::close(fd);
        std::filesystem::remove(tmp);
        fail(output_path_for_errors(sealed_path), "", std::string("write failed: ") + std::strerror(e));
      }
      b += w;
      n -= size_t(w);
    }
  };
  put(header.data(), header.size());
  std::vector<uint8_t> buf(size_t(h.chunk) + kTag + 16);
  const uint64_t n = chunk_count(h);
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t begin = i * h.chunk, len = std::min<uint64_t>(h.chunk, h.size - begin);
    gcm(true, fk, i, associated_data(header, name, i, i + 1 == n), in.data() ? in.data() + begin : buf.data(), len,
        buf.data(), buf.data() + len);
    put(buf.data(), len + kTag);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    std::filesystem::remove(tmp);
    fail(output_path_for_errors(sealed_path), "", "fsync/close failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, sealed_path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    fail(output_path_for_errors(sealed_path), "", "rename failed: " + ec.message());
  }
}

UnsealedBuffer::UnsealedBuffer(const std::string& sealed_path, const std::string& name, const SealKey& key) {
  MappedFile f(sealed_path);
  const Header h = decode_header(sealed_path, f.data(), f.size());
  size_ = size_t(h.size);
  mapped_ = std::max<size_t>(size_, 1);
  void* m = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) fail(sealed_path, "", "cannot allocate " + std::to_string(size_) + " bytes for the decrypted file");
  data_ = static_cast<uint8_t*>(m);
  ::madvise(m, mapped_, MADV_DONTDUMP);
  try {
    unseal_bytes(sealed_path, f.data(), f.size(), name, key, data_);
  } catch (...) {
    std::memset(data_, 0, size_);
    ::munmap(data_, mapped_);
    data_ = nullptr;
    throw;
  }
  ::mprotect(data_, mapped_, PROT_READ);
}

UnsealedBuffer::~UnsealedBuffer() {
  if (!data_) return;
  ::mprotect(data_, mapped_, PROT_READ | PROT_WRITE);
  std::memset(data_, 0, size_);  // leave no plaintext behind in freed pages
  ::munmap(data_, mapped_);
}

namespace {
std::optional<SealKey>& default_key_storage() {
  static std::optional<SealKey> k;
  return k;
}
}  // namespace

void set_default_seal_key(std::optional<SealKey> key) { default_key_storage() = key; }
const std::optional<SealKey>& default_seal_key() { return default_key_storage(); }

SealKey read_key_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) fail(path, "", "cannot read the key file");
  std::string line;
  std::getline(f, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  const std::string prefix = kKeyPrefix;
  if (line.compare(0, prefix.size(), prefix) != 0 || line.size() != prefix.size() + 64)
    fail(path, "", "not an awq key file (expected one line \"awq-key-v1 \" + 64 hex digits, as `awq keygen` writes)");
  SealKey k;
  for (size_t i = 0; i < 32; ++i) {
    unsigned v = 0;
    for (size_t j = 0; j < 2; ++j) {
      const char c = line[prefix.size() + 2 * i + j];
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) fail(path, "", "the key has a character that is not a hex digit");
      v = v * 16 + unsigned(d);
    }
    k.bytes[i] = uint8_t(v);
  }
  return k;
}

void write_new_key_file(const std::string& path) {
  SealKey k;
  if (RAND_bytes(k.bytes.data(), int(k.bytes.size())) != 1) throw Error("OpenSSL: no random bytes for the key");
  static const char* hex = "0123456789abcdef";
  std::string line = kKeyPrefix;
  for (uint8_t b : k.bytes) line += hex[b >> 4], line += hex[b & 15];
  line += "\n";
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::symlink_status(path, ec)))
    fail(path, "", "exists; a key file is never overwritten (remove it first)");
  // Written whole beside it and linked into place (never replacing): a run killed midway leaves no
  // partial key at `path` (a 0-byte key once blocked the next keygen), only a temporary that the
  // next write of `path` removes.
  write_file_atomic(path, line, /*replace=*/false, 0600);
}

}  // namespace awq
