// Sealed checkpoints: AES-256-GCM chunks round-trip, and every kind of damage is refused naming
// the file (and the tensor, where the header chunk still authenticates).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "awq/error.h"
#include "awq/model_dir.h"
#include "awq/safetensors.h"
#include "awq/sealed.h"
#include "test_util.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

SealKey key_of(uint8_t v) {
  SealKey k;
  k.bytes.fill(v);
  return k;
}

const std::string kModel = "tiny-llama-awq";

// A copy of the tiny model's tensor file sealed with 4 KiB chunks (many chunks to damage).
struct Sealed {
  test::TempDir tmp;
  std::string plain = test::data_path(kModel) + "/model.safetensors";
  std::string enc = tmp / "model.safetensors.enc";
  Sealed() { seal_file(plain, enc, "model.safetensors", key_of(7), 4096); }
  std::string bytes() const { return test::read_bytes(enc); }
  std::string error_with(const std::string& data, const std::string& name = "model.safetensors",
                         uint8_t key = 7) const {
    try {
      unseal_bytes("f.enc", reinterpret_cast<const uint8_t*>(data.data()), data.size(), name, key_of(key), nullptr);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

TEST(Sealed, RoundTripIsExact) {
  Sealed s;
  const std::string data = s.bytes();
  const std::string plain = test::read_bytes(s.plain);
  std::string out(plain.size(), '\0');
  EXPECT_EQ(unseal_bytes("f", reinterpret_cast<const uint8_t*>(data.data()), data.size(), "model.safetensors",
                         key_of(7), reinterpret_cast<uint8_t*>(out.data())),
            plain.size());
  EXPECT_EQ(out, plain);
  EXPECT_EQ(data.size(), 64 + plain.size() + 16 * ((plain.size() + 4095) / 4096));
}

TEST(Sealed, TwoSealsOfOneFileDiffer) {  // fresh salt per file: no nonce is reused under one key
  Sealed a, b;
  EXPECT_NE(a.bytes().substr(24, 16), b.bytes().substr(24, 16));
  EXPECT_NE(a.bytes().substr(64, 64), b.bytes().substr(64, 64));
}

TEST(Sealed, WrongKeyIsRefused) {
  Sealed s;
  EXPECT_NE(s.error_with(s.bytes(), "model.safetensors", 8).find("chunk 0 of"), std::string::npos);
}

TEST(Sealed, FlippedByteNamesTheTensor) {
  Sealed s;
  std::string d = s.bytes();
  const size_t at = 64 + 3 * (4096 + 16) + 100;  // inside chunk 3: tensor data, header chunk intact
  d[at] ^= 1;
  const std::string e = s.error_with(d);
  EXPECT_NE(e.find("chunk 3 of"), std::string::npos) << e;
  EXPECT_NE(e.find("model.layers."), std::string::npos) << e;  // the tensor stored there is named
}

TEST(Sealed, ReorderedChunksAreRefused) {
  Sealed s;
  std::string d = s.bytes();
  const size_t rec = 4096 + 16, a = 64 + rec, b = 64 + 2 * rec;
  const std::string ca = d.substr(a, rec), cb = d.substr(b, rec);
  d.replace(a, rec, cb);
  d.replace(b, rec, ca);
  EXPECT_NE(s.error_with(d).find("chunk 1 of"), std::string::npos);
}

TEST(Sealed, TruncationIsRefused) {
  Sealed s;
  const std::string d = s.bytes();
  EXPECT_NE(s.error_with(d.substr(0, d.size() - 1)).find("truncated"), std::string::npos);
  // Cut at a chunk boundary and shrink the header's size to match: the final flag catches it.
  std::string cut = d.substr(0, 64 + 2 * (4096 + 16));
  const uint64_t size = 2 * 4096;
  std::memcpy(cut.data() + 16, &size, 8);
  EXPECT_NE(s.error_with(cut).find("fails authentication"), std::string::npos);
}

TEST(Sealed, RenamedOrEditedHeaderIsRefused) {
  Sealed s;
  EXPECT_NE(s.error_with(s.bytes(), "model-00001-of-00002.safetensors").find("fails authentication"),
            std::string::npos);
  std::string d = s.bytes();
  d[30] ^= 1;  // salt
  EXPECT_NE(s.error_with(d).find("fails authentication"), std::string::npos);
  d = s.bytes();
  d[0] = 'X';
  EXPECT_NE(s.error_with(d).find("magic"), std::string::npos);
}

TEST(Sealed, ModelDirNeedsTheKey) {
  test::TempDir tmp;
  const std::string src = test::data_path(kModel);
  fs::create_directory(tmp / "m");
  for (const auto& e : fs::directory_iterator(src))
    if (e.path().filename() != "model.safetensors") fs::copy_file(e.path(), tmp / ("m/" + e.path().filename().string()));
  seal_file(src + "/model.safetensors", tmp / "m/model.safetensors.enc", "model.safetensors", key_of(9));
  set_default_seal_key(std::nullopt);
  try {
    ModelDir d(tmp / "m");
    FAIL() << "opened without a key";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is encrypted"), std::string::npos) << e.what();
  }
  set_default_seal_key(key_of(9));
  ModelDir enc(tmp / "m"), plain(src);
  ASSERT_EQ(enc.tensors().size(), plain.tensors().size());
  for (size_t i = 0; i < enc.tensors().size(); ++i) {
    const TensorView& a = *enc.tensors()[i];
    const TensorView& b = *plain.tensors()[i];
    EXPECT_EQ(a.name, b.name);
    ASSERT_EQ(a.nbytes, b.nbytes);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << a.name;
  }
  EXPECT_TRUE(enc.auxiliary_files() == plain.auxiliary_files());
  // The decrypted plaintext lives in anonymous memory: releasing its pages (as streaming readers
  // do after each module) must leave it alone, or the bytes would read back as zeros.
  for (const TensorView* t : enc.tensors()) {
    EXPECT_EQ(t->mapping, nullptr) << t->name;
    release_pages(*t);
  }
  for (size_t i = 0; i < enc.tensors().size(); ++i)
    EXPECT_EQ(std::memcmp(enc.tensors()[i]->data, plain.tensors()[i]->data, plain.tensors()[i]->nbytes), 0)
        << enc.tensors()[i]->name;
  set_default_seal_key(std::nullopt);
}

TEST(SealedCli, KeygenEncryptInspectDecrypt) {
  test::TempDir tmp;
  const std::string model = test::data_path(kModel), key = tmp / "k.key";
  auto r = test::run_awq({"keygen", "-o", key});
  ASSERT_EQ(r.status, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(test::run_awq({"keygen", "-o", key}).status, 1);  // never overwritten
  r = test::run_awq({"encrypt", model, "-o", tmp / "enc", "--key-file", key});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(tmp / "enc/model.safetensors.enc"));
  EXPECT_FALSE(fs::exists(tmp / "enc/model.safetensors"));
  EXPECT_TRUE(fs::exists(tmp / "enc/config.json"));
  // Readers: without the key refused; with --key-file or AWQ_KEY_FILE the same report as the plaintext.
  EXPECT_EQ(test::run_awq({"inspect", tmp / "enc"}).status, 1);
  const auto plain = test::run_awq({"inspect", model, "--json"});
  const auto enc = test::run_awq({"inspect", tmp / "enc", "--json", "--key-file", key});
  ASSERT_EQ(enc.status, 0) << enc.err;
  auto strip = [](std::string s) {
    auto j = nlohmann::json::parse(s);
    j.erase("path");
    j.erase("shards");
    return j.dump();
  };
  EXPECT_EQ(strip(enc.out), strip(plain.out));
  setenv("AWQ_KEY_FILE", key.c_str(), 1);
  r = test::run_awq({"dequantize", tmp / "enc", "-o", tmp / "dq-enc"});
  unsetenv("AWQ_KEY_FILE");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(test::run_awq({"dequantize", model, "-o", tmp / "dq-plain"}).status, 0);
  EXPECT_EQ(test::read_bytes(tmp / "dq-enc/model.safetensors"), test::read_bytes(tmp / "dq-plain/model.safetensors"));
  r = test::run_awq({"decrypt", tmp / "enc", "-o", tmp / "dec", "--key-file", key});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(test::read_bytes(tmp / "dec/model.safetensors"), test::read_bytes(model + "/model.safetensors"));
  // A wrong key: exit 1, nothing written.
  ASSERT_EQ(test::run_awq({"keygen", "-o", tmp / "other.key"}).status, 0);
  r = test::run_awq({"decrypt", tmp / "enc", "-o", tmp / "dec2", "--key-file", tmp / "other.key"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("fails authentication"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "dec2"));
  size_t leftovers = 0;
  for (const auto& e : fs::directory_iterator(tmp.path()))
    leftovers += e.path().filename().string().find("awq-tmp") != std::string::npos;
  EXPECT_EQ(leftovers, 0u);
}

}  // namespace
}  // namespace awq
