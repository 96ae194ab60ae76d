// Test helpers: temporary directories, golden-data paths, running the built `awq` binary.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace awq::test {

std::string data_path(const std::string& rel);  // tests/data/<rel>

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return (path_ / rel).string(); }

 private:
  std::filesystem::path path_;
};

struct RunResult {
  int status;
  std::string out, err;
};
// Runs the awq binary with arguments; captures stdout/stderr.
RunResult run_awq(const std::vector<std::string>& args);
// Runs any program (a tool such as awq_synth) with arguments, in `cwd` when not empty.
RunResult run_program(const std::string& binary, const std::vector<std::string>& args, const std::string& cwd = "");

// Starts the awq binary without waiting: stdout and stderr go to `log` (when not empty), `env`
// ("NAME=value") is added to the environment, SIGINT and SIGTERM have their default action (as in
// a terminal, even when the test runner ignores them). Returns the child's pid.
int spawn_awq(const std::vector<std::string>& args, const std::string& log = "", const std::vector<std::string>& env = {});
// Every regular file under `dir` (relative path -> bytes), following symlinked files.
std::map<std::string, std::string> snapshot_tree(const std::string& dir);
// Names of the entries of `dir`, sorted.
std::vector<std::string> entry_names(const std::string& dir);

// Writes raw bytes to a file.
void write_bytes(const std::string& path, const std::string& bytes);
// An AutoAWQ GEMM checkpoint of one module large enough (K = N = 8192, random codes from `seed`)
// that converting or dequantizing it takes a while: for tests that interrupt a write.
void write_big_gemm(const std::string& dir, unsigned seed);
std::string read_bytes(const std::string& path);

// Resident bytes of this process's mapping that holds address `p` (the "Rss:" of its entry in
// /proc/self/smaps); 0 when no mapping holds it.
size_t mapping_rss_bytes(const void* p);
// This process's resident file-backed bytes ("RssFile:" in /proc/self/status).
size_t rss_file_bytes();

}  // namespace awq::test

#include <functional>
#include <nlohmann/json.hpp>

#include "awq/dtype.h"

namespace awq::test {

// An editable in-memory tensor, for building defective checkpoints from good ones.
struct EditTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};
// Rewrites a safetensors file through `edit` (which may add, drop, rename or change tensors).
void rewrite_safetensors(const std::string& path, const std::function<void(std::vector<EditTensor>&)>& edit,
                         std::map<std::string, std::string> metadata = {{"format", "pt"}});
// Copies a directory tree (a golden model) to `to`.
void copy_dir(const std::string& from, const std::string& to);
// Reads, edits and writes back a JSON file.
void edit_json(const std::string& path, const std::function<void(nlohmann::json&)>& edit);

}  // namespace awq::test
