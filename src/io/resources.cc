#include "awq/resources.h"

#include <sys/statvfs.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include "awq/error.h"
#include "awq/progress.h"

namespace fs = std::filesystem;

namespace awq {
namespace {

std::optional<uint64_t> env_bytes(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  const unsigned long long x = std::strtoull(v, &end, 10);
  if (*end) return std::nullopt;
  return uint64_t(x);
}

std::optional<uint64_t> read_number(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  if (!(f >> s) || s == "max") return std::nullopt;
  try {
    return uint64_t(std::stoull(s));
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<uint64_t> mem_available_meminfo() {
  std::ifstream f("/proc/meminfo");
  std::string key, unit;
  uint64_t kb;
  while (f >> key >> kb) {
    std::getline(f, unit);
    if (key == "MemAvailable:") return kb * 1024;
  }
  return std::nullopt;
}

// The memory this process's cgroup may still use: memory.max − memory.current (v2), or
// limit_in_bytes − usage_in_bytes (v1). nullopt when unlimited or unreadable.
std::optional<uint64_t> cgroup_headroom() {
  std::ifstream f("/proc/self/cgroup");
  std::string line;
  while (std::getline(f, line)) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string ctrl = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    std::optional<uint64_t> limit, used;
    if (line.compare(0, 2, "0:") == 0 && ctrl.empty()) {
      limit = read_number("/sys/fs/cgroup" + path + "/memory.max");
      used = read_number("/sys/fs/cgroup" + path + "/memory.current");
    } else if (ctrl.find("memory") != std::string::npos) {
      limit = read_number("/sys/fs/cgroup/memory" + path + "/memory.limit_in_bytes");
      used = read_number("/sys/fs/cgroup/memory" + path + "/memory.usage_in_bytes");
    }
    if (limit && *limit < (uint64_t(1) << 60)) return used && *used < *limit ? *limit - *used : 0;
  }
  return std::nullopt;
}

struct Available {
  uint64_t bytes;
  std::string source;
};

std::optional<Available> memory_available() {
  if (auto t = env_bytes("AWQ_TEST_MEM_AVAILABLE")) return Available{*t, "AWQ_TEST_MEM_AVAILABLE"};
  std::optional<Available> r;
  if (auto m = mem_available_meminfo()) r = Available{*m, "MemAvailable in /proc/meminfo"};
  if (auto c = cgroup_headroom(); c && (!r || *c < r->bytes)) r = Available{*c, "this process's cgroup memory limit"};
  return r;
}

std::optional<Available> disk_free(const std::string& out_dir) {
  if (auto t = env_bytes("AWQ_TEST_DISK_FREE")) return Available{*t, "AWQ_TEST_DISK_FREE"};
  std::error_code ec;
  fs::path p = fs::absolute(out_dir, ec);
  while (!p.empty() && !fs::exists(p, ec) && p != p.parent_path()) p = p.parent_path();
  struct statvfs st {};
  if (::statvfs(p.c_str(), &st) != 0) return std::nullopt;
  return Available{uint64_t(st.f_bavail) * uint64_t(st.f_frsize), "free on the filesystem of " + p.string()};
}

}  // namespace

uint64_t quant_linear_bytes(int64_t n, int64_t k, int64_t groups) {
  const uint64_t un = uint64_t(n), uk = uint64_t(k), ug = uint64_t(groups);
  return un * uk + un * ug * 8 + uk * 8 + un * 4;
}

void check_resources(const ResourceNeeds& needs) {
  if (needs.tensor_bytes > 0)
    if (auto m = memory_available(); m && needs.tensor_bytes > m->bytes)
      fail(needs.out_dir, needs.tensor,
           "needs " + human_bytes(needs.tensor_bytes) + " (" + std::to_string(needs.tensor_bytes) + " bytes) of memory at once, but only " +
               human_bytes(m->bytes) + " is available (" + m->source + "); refused before writing anything");
  if (needs.output_bytes > 0)
    if (auto d = disk_free(needs.out_dir); d && needs.output_bytes > d->bytes)
      fail(needs.out_dir, "",
           "the output needs " + human_bytes(needs.output_bytes) + " (" + std::to_string(needs.output_bytes) + " bytes) of disk, but only " +
               human_bytes(d->bytes) + " is " + d->source + "; refused before writing anything");
}

}  // namespace awq
