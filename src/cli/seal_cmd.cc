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

void apply_key_file() {
  std::string path = key_file_flag();
  if (path.empty())
    if (const char* env = std::getenv("AWQ_KEY_FILE")) path = env;
  if (!path.empty()) set_default_seal_key(read_key_file(path));
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

Action add_encrypt(CLI::App& app) {
  auto* sub = app.add_subcommand("encrypt", "Seal every tensor file of MODEL (X.safetensors -> X.safetensors.enc, AES-256-GCM)");
  struct Opts { std::string model, out, key; bool force = false; };
  auto o = std::make_shared<Opts>();
  sub->add_option("MODEL", o->model, "model directory with .safetensors files")->required();
  sub->add_option("-o,--output", o->out, "output directory")->required();
  sub->add_option("--key-file", o->key, "key file (awq keygen)")->required();
  sub->add_flag("--force", o->force, "replace a non-empty OUT_DIR once the new one is complete");
  return [o]() {
    const SealKey key = read_key_file(o->key);
    if (!fs::is_directory(o->model)) fail(o->model, "", "not a model directory");
    const auto files = tensor_files(o->model, false);
    if (files.empty()) fail(o->model, "", "no .safetensors files to encrypt");
    if (!tensor_files(o->model, true).empty()) fail(o->model, "", "already holds encrypted .safetensors.enc files");
    OutputDir out(o->out, o->force, {o->model, o->key});  // never over the model or the key
    for (const auto& f : files) seal_file((fs::path(o->model) / f).string(), out.file(f + kSealedSuffix), f, key);
    copy_others(o->model, out, ".safetensors");
    out.commit();
    std::printf("encrypted %zu tensor file(s) into %s (config and tokenizer files copied as they are)\n", files.size(),
                o->out.c_str());
    return 0;
  };
}

Action add_decrypt(CLI::App& app) {
  auto* sub = app.add_subcommand("decrypt", "Decrypt an encrypted checkpoint back to plain .safetensors files");
  struct Opts { std::string model, out, key; bool force = false; };
  auto o = std::make_shared<Opts>();
  sub->add_option("ENC", o->model, "encrypted model directory")->required();
  sub->add_option("-o,--output", o->out, "output directory")->required();
  sub->add_option("--key-file", o->key, "key file (awq keygen)")->required();
  sub->add_flag("--force", o->force, "replace a non-empty OUT_DIR once the new one is complete");
  return [o]() {
    const SealKey key = read_key_file(o->key);
    if (!fs::is_directory(o->model)) fail(o->model, "", "not a model directory");
    const auto files = tensor_files(o->model, true);
    if (files.empty()) fail(o->model, "", "no .safetensors.enc files to decrypt");
    OutputDir out(o->out, o->force, {o->model, o->key});  // never over the model or the key
    for (const auto& f : files)
      unseal_file((fs::path(o->model) / (f + kSealedSuffix)).string(), out.file(f), f, key);
    copy_others(o->model, out, std::string(".safetensors") + kSealedSuffix);
    out.commit();
    std::printf("decrypted %zu tensor file(s) into %s\n", files.size(), o->out.c_str());
    return 0;
  };
}

}  // namespace awq::cli
