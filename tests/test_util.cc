#include "test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

namespace awq::test {

std::string data_path(const std::string& rel) { return std::string(AWQ_TEST_DATA) + "/" + rel; }

TempDir::TempDir() {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() / ("awq-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

size_t mapping_rss_bytes(const void* p) {
  std::ifstream in("/proc/self/smaps");
  const auto addr = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    unsigned long long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx ", &lo, &hi) == 2 && line.find('-') < line.find(' ')) {
      inside = addr >= lo && addr < hi;
    } else if (inside && line.rfind("Rss:", 0) == 0) {
      return size_t(std::stoull(line.substr(4))) * 1024;
    }
  }
  return 0;
}

size_t rss_file_bytes() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("RssFile:", 0) == 0) return size_t(std::stoull(line.substr(8))) * 1024;
  return 0;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

RunResult run_awq(const std::vector<std::string>& args) { return run_program(AWQ_BINARY, args); }

RunResult run_program(const std::string& binary, const std::vector<std::string>& args, const std::string& cwd) {
  TempDir t;
  std::string cmd = (cwd.empty() ? std::string() : "cd '" + cwd + "' && ") + "'" + binary + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " >'" + (t / "out") + "' 2>'" + (t / "err") + "' </dev/null";
  const int rc = std::system(cmd.c_str());
  RunResult r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.out = read_bytes(t / "out");
  r.err = read_bytes(t / "err");
  return r;
}

int spawn_awq(const std::vector<std::string>& args, const std::string& log, const std::vector<std::string>& env) {
  std::vector<std::string> argv_s{AWQ_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
  if (!log.empty()) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
  }
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(AWQ_BINARY, argv.data());
  ::_exit(127);
}

std::map<std::string, std::string> snapshot_tree(const std::string& dir) {
  std::map<std::string, std::string> r;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) r[std::filesystem::relative(e.path(), dir).string()] = read_bytes(e.path().string());
  return r;
}

std::vector<std::string> entry_names(const std::string& dir) {
  std::vector<std::string> r;
  for (const auto& e : std::filesystem::directory_iterator(dir)) r.push_back(e.path().filename().string());
  std::sort(r.begin(), r.end());
  return r;
}

}  // namespace awq::test

#include "awq/safetensors.h"

namespace awq::test {

void rewrite_safetensors(const std::string& path, const std::function<void(std::vector<EditTensor>&)>& edit,
                         std::map<std::string, std::string> metadata) {
  std::vector<EditTensor> ts;
  {
    SafetensorsFile f(path);
    for (const auto& t : f.tensors())
      ts.push_back({t.name, t.dtype, t.shape, std::string(reinterpret_cast<const char*>(t.data), t.nbytes)});
  }
  edit(ts);
  std::vector<TensorSpec> specs;
  for (const auto& t : ts) specs.push_back({t.name, t.dtype, t.shape});
  SafetensorsWriter w(path, specs, metadata);
  for (const auto& t : ts) w.append(t.bytes.data(), t.bytes.size());
  w.commit();
}

void copy_dir(const std::string& from, const std::string& to) {
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
}

void edit_json(const std::string& path, const std::function<void(nlohmann::json&)>& edit) {
  auto j = nlohmann::json::parse(read_bytes(path));
  edit(j);
  write_bytes(path, j.dump(2));
}

}  // namespace awq::test

#include <random>

#include "awq/dtype.h"

namespace awq::test {

void write_big_gemm(const std::string& dir, unsigned seed) {
  std::filesystem::create_directories(dir);
  write_bytes(dir + "/config.json",
              R"({"quantization_config": {"bits": 4, "group_size": 128, "modules_to_not_convert": null, "quant_method": "awq", "version": "gemm", "zero_point": true}})");
  const int64_t k = 8192, n = 8192, g = 128;
  const std::string m = "model.layers.0.mlp.down_proj";
  SafetensorsWriter w(dir + "/model.safetensors", {{m + ".qweight", DType::I32, {k, n / 8}},
                                                   {m + ".qzeros", DType::I32, {k / g, n / 8}},
                                                   {m + ".scales", DType::F16, {k / g, n}}});
  std::mt19937 rng(seed);
  std::vector<uint32_t> words(size_t(k * n / 8));
  for (auto& x : words) x = rng();
  w.append(words.data(), words.size() * 4);
  std::vector<uint32_t> zeros(size_t(k / g * n / 8), 0x88888888u);
  w.append(zeros.data(), zeros.size() * 4);
  std::vector<uint16_t> scales(size_t(k / g * n), f32_to_f16(0.01f));
  w.append(scales.data(), scales.size() * 2);
  w.commit();
}

}  // namespace awq::test
