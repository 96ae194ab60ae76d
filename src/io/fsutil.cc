#include "awq/fsutil.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "awq/error.h"

namespace fs = std::filesystem;

namespace awq {

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

namespace {
std::string tmp_name(const fs::path& p) {
  return (p.parent_path() / ("." + p.filename().string() + ".tmp-" + std::to_string(::getpid()))).string();
}

void write_fd_all(int fd, const char* c, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail(path, "", std::string("write failed: ") + std::strerror(errno));
    }
    c += w;
    n -= size_t(w);
  }
}
}  // namespace

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = tmp_name(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, "", std::string("cannot create: ") + std::strerror(errno));
  try {
    write_fd_all(fd, content.data(), content.size(), path);
    if (::fsync(fd) != 0) fail(path, "", std::string("fsync failed: ") + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    fail(path, "", std::string("rename failed: ") + std::strerror(errno));
  }
}

void copy_file_atomic(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) fail(from, "", "cannot open for reading");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_file_atomic(to, content);
}

}  // namespace awq
