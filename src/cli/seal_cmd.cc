// awq keygen | encrypt | decrypt: sealed (AES-256-GCM) checkpoints, and the --key-file option the
// reading commands take.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "awq/error.h"
#include "awq/fsutil.h"
#include "awq/model_dir.h"
#include "awq/sealed.h"
#include "cli/commands.h"

namespace awq::cli {
namespace fs = std::filesystem;
namespace {

std::string& key_file_flag() {
  static std::string path;
  return path;
}

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// Tensor files of the directory, plaintext names ("model.safetensors"), whether stored sealed.
std::vector<std::string> tensor_files(const std::string& dir, bool sealed) {
  std::vector<std::string> out;
  const std::string ext = sealed ? std::string(".safetensors") + kSealedSuffix : ".safetensors";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (e.is_regular_file() && !n.empty() && n[0] != '.' && ends_with(n, ext))
      out.push_back(sealed ? n.substr(0, n.size() - 4) : n);
  }
  if (ec) fail(dir, "", "cannot list: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

// Copies every other regular file (configs, index, tokenizer) unchanged.
void copy_others(const std::string& from, const OutputDir& out, const std::string& skip_ext) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(from, ec)) {
    const std::string n = e.path().filename().string();
    if (!e.is_regular_file() || n.empty() || n[0] == '.' || ends_with(n, skip_ext)) continue;
    copy_file_atomic(e.path().string(), out.file(n));
  }
}

}  // namespace

void add_key_file_option(CLI::App* sub) {
  sub->add_option("--key-file", key_file_flag(),
                  "key for an encrypted checkpoint (awq keygen); default: the AWQ_KEY_FILE environment variable");
}

namespace {
std::string key_file_in_use() {
  std::string path = key_file_flag();
  if (path.empty())
    if (const char* env = std::getenv("AWQ_KEY_FILE")) path = env;
  return path;
}
}  // namespace

void apply_key_file() {
  const std::string path = key_file_in_use();
  if (!path.empty()) set_default_seal_key(read_key_file(path));
}

std::vector<std::string> key_file_inputs() {
  const std::string path = key_file_in_use();
  return path.empty() ? std::vector<std::string>{} : std::vector<std::string>{path};
}

Action add_keygen(CLI::App& app) {
  auto* sub = app.add_subcommand("keygen", "Write a new random 256-bit key file (mode 0600) for encrypt/decrypt");
  auto out = std::make_shared<std::string>();
  sub->add_option("-o,--output", *out, "key file to create (never overwritten)")->required();
  return [out]() {
    write_new_key_file(*out);
    std::printf("wrote %s (keep it secret; without it the encrypted files cannot be read)\n", out->c_str());
    return 0;
  };
}

namespace {

struct SealOpts {
  std::string model, out, key;
  bool force = false;
};

// encrypt and decrypt share their options: MODEL/ENC, -o, --key-file, --force.
std::shared_ptr<SealOpts> add_seal_options(CLI::App* sub, const char* model_name, const char* model_help) {
  auto o = std::make_shared<SealOpts>();
  sub->add_option(model_name, o->model, model_help)->required();
  sub->add_option("-o,--output", o->out, "output directory")->required();
  sub->add_option("--key-file", o->key, "key file (awq keygen)")->required();
  sub->add_flag("--force", o->force, "replace a non-empty OUT_DIR once the new one is complete");
  return o;
}

// Seals (encrypt) or unseals every tensor file of o.model into OUT_DIR, copying the other files;
// returns how many tensor files it wrote.
size_t transform_dir(const SealOpts& o, bool encrypt) {
  const SealKey key = read_key_file(o.key);
  if (!fs::is_directory(o.model)) fail(o.model, "", "not a model directory");
  const auto files = tensor_files(o.model, !encrypt);
  if (files.empty()) fail(o.model, "", encrypt ? "no .safetensors files to encrypt" : "no .safetensors.enc files to decrypt");
  if (encrypt && !tensor_files(o.model, true).empty()) fail(o.model, "", "already holds encrypted .safetensors.enc files");
  OutputDir out(o.out, o.force, {o.model, o.key});  // never over the model or the key
  for (const auto& f : files) {
    const std::string plain = (fs::path(o.model) / f).string(), sealed = plain + kSealedSuffix;
    if (encrypt) seal_file(plain, out.file(f + kSealedSuffix), f, key);
    else unseal_file(sealed, out.file(f), f, key);
  }
  copy_others(o.model, out, encrypt ? std::string(".safetensors") : std::string(".safetensors") + kSealedSuffix);
  out.commit();
  return files.size();
}

}  // namespace

Action add_encrypt(CLI::App& app) {
  auto* sub = app.add_subcommand("encrypt", "Seal every tensor file of MODEL (X.safetensors -> X.safetensors.enc, AES-256-GCM)");
  auto o = add_seal_options(sub, "MODEL", "model directory with .safetensors files");
  return [o]() {
    const size_t n = transform_dir(*o, true);
    std::printf("encrypted %zu tensor file(s) into %s (config and tokenizer files copied as they are)\n", n, o->out.c_str());
    return 0;
  };
}

Action add_decrypt(CLI::App& app) {
  auto* sub = app.add_subcommand("decrypt", "Decrypt an encrypted checkpoint back to plain .safetensors files");
  auto o = add_seal_options(sub, "ENC", "encrypted model directory");
  return [o]() {
    const size_t n = transform_dir(*o, false);
    std::printf("decrypted %zu tensor file(s) into %s\n", n, o->out.c_str());
    return 0;
  };
}

}  // namespace awq::cli
