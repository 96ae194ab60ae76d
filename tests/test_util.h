// Test helpers: temporary directories, golden-data paths, running the built `awq` binary.
#pragma once
#include <filesystem>
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

// Writes raw bytes to a file.
void write_bytes(const std::string& path, const std::string& bytes);
std::string read_bytes(const std::string& path);

}  // namespace awq::test
