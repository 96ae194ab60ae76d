// Sealed (encrypted at rest) tensor files: `X.safetensors` -> `X.safetensors.enc`.
// AES-256-GCM through OpenSSL, in chunks, so a file is encrypted and decrypted as a stream and a
// damaged chunk is named. Layout and nonce scheme: docs/encryption.md.
//
//   header (64 bytes): "AWQSEAL1" | u32 version (1) | u32 chunk_size | u64 plaintext_size |
//                      16-byte random salt | 24 zero bytes
//   chunks:            for i in [0, n): ciphertext of plaintext[i*chunk, ...) (chunk_size bytes,
//                      the last one shorter, >= 0) | 16-byte GCM tag
//   file key:          HKDF-SHA256(ikm = the 32-byte key, salt = salt, info = "awq-seal-v1")
//   nonce of chunk i:  u64 LE i | 4 zero bytes (unique: a fresh random salt, so a fresh file key, per file)
//   associated data:   the 64 header bytes | the plaintext file's name (e.g. "model.safetensors")
//                      | u64 LE i | u8 final (1 for the last chunk)
// So a flipped byte, a chunk moved or dropped, a truncated file, a header edit, or a file renamed
// or swapped with another sealed under the same key all fail authentication.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace awq {

struct SealKey {
  std::array<uint8_t, 32> bytes{};
};

// Key files hold one line: "awq-key-v1 " followed by 64 hex digits. Throws awq::Error naming the file.
SealKey read_key_file(const std::string& path);
// Writes a new random key (from the OS CSPRNG) to `path`, mode 0600, refusing to overwrite.
void write_new_key_file(const std::string& path);

// The key commands use when none is passed explicitly: set by the CLI from --key-file or the
// AWQ_KEY_FILE environment variable. Empty by default.
void set_default_seal_key(std::optional<SealKey> key);
const std::optional<SealKey>& default_seal_key();

constexpr const char* kSealedSuffix = ".enc";
constexpr uint32_t kDefaultSealChunk = 1u << 20;

// Encrypts the file `plain_path` into `sealed_path` (written atomically: temp + fsync + rename);
// `name` is the plaintext file's base name bound into every chunk.
void seal_file(const std::string& plain_path, const std::string& sealed_path, const std::string& name,
               const SealKey& key, uint32_t chunk_size = kDefaultSealChunk);

// A decrypted image of a sealed file in anonymous memory (never written to disk; excluded from
// core dumps). Throws awq::Error naming the file, the failing chunk, and the tensor(s) stored in
// it when the header chunk still authenticates, on a wrong key, tampering, truncation or reordering.
class UnsealedBuffer {
 public:
  UnsealedBuffer(const std::string& sealed_path, const std::string& name, const SealKey& key);
  ~UnsealedBuffer();
  UnsealedBuffer(const UnsealedBuffer&) = delete;
  UnsealedBuffer& operator=(const UnsealedBuffer&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0, mapped_ = 0;
};

// Decrypts `sealed_path` into a new file `plain_path` (O_EXCL), one chunk at a time, writing each
// chunk only after it authenticated; on any failure the partial output is removed.
void unseal_file(const std::string& sealed_path, const std::string& plain_path, const std::string& name,
                 const SealKey& key);

// Chunk-by-chunk decryption: `sink(offset, plaintext, n)` gets each authenticated chunk in order;
// with `out` non-null the plaintext goes there (size bytes of the header) instead of scratch.
using ChunkSink = std::function<void(uint64_t offset, const uint8_t* plain, size_t n)>;
size_t unseal_stream(const std::string& label, const uint8_t* data, size_t size, const std::string& name,
                     const SealKey& key, uint8_t* out, const ChunkSink& sink);

// Parses and authenticates a sealed image held in memory (for the fuzzer): returns the plaintext
// size, throws awq::Error on anything wrong. `out` receives the plaintext (may be null).
size_t unseal_bytes(const std::string& label, const uint8_t* data, size_t size, const std::string& name,
                    const SealKey& key, uint8_t* out);

}  // namespace awq
