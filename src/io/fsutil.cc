#include "awq/fsutil.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

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

OutputDir::OutputDir(const std::string& out_dir, bool force) : out_(fs::absolute(out_dir).lexically_normal()), force_(force) {
  if (out_.filename().empty()) out_ = out_.parent_path();
  std::error_code ec;
  if (fs::exists(out_, ec)) {
    if (!fs::is_directory(out_, ec)) fail(out_.string(), "", "exists and is not a directory");
    if (!fs::is_empty(out_, ec) && !force_)
      fail(out_.string(), "", "output directory exists and is not empty (use --force to replace it)");
  } else if (!fs::exists(out_.parent_path(), ec)) {
    fail(out_.string(), "", "parent directory does not exist");
  }
  remove_stale_temporaries();
  tmp_ = out_.parent_path() / ("." + out_.filename().string() + ".awq-tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp_, ec);
  if (!fs::create_directory(tmp_, ec)) fail(tmp_.string(), "", "cannot create temporary directory: " + ec.message());
}

void OutputDir::remove_stale_temporaries() const {
  // A run killed with -9 cannot clean up; its hidden sibling carries its pid. Remove those whose
  // process is gone, so a later run leaves nothing beside OUT_DIR.
  std::error_code ec;
  for (const char* kind : {".awq-tmp-", ".awq-old-"}) {
    const std::string prefix = "." + out_.filename().string() + kind;
    for (const auto& e : fs::directory_iterator(out_.parent_path(), ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind(prefix, 0) != 0) continue;
      const std::string pid = n.substr(prefix.size());
      if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 9) continue;
      if (::kill(pid_t(std::stol(pid)), 0) == 0 || errno != ESRCH) continue;
      std::error_code ec2;
      fs::remove_all(e.path(), ec2);
    }
  }
}

void OutputDir::commit() {
  std::error_code ec;
  fsync_dir(tmp_.string());
  if (fs::exists(out_, ec)) {
    // Replace only now that the new directory is complete: move the old one aside first.
    fs::path old = out_.parent_path() / ("." + out_.filename().string() + ".awq-old-" + std::to_string(::getpid()));
    fs::rename(out_, old, ec);
    if (ec) fail(out_.string(), "", "cannot move the existing directory aside: " + ec.message());
    fs::rename(tmp_, out_, ec);
    if (ec) {
      std::error_code ec2;
      fs::rename(old, out_, ec2);
      fail(out_.string(), "", "cannot rename the new directory into place: " + ec.message());
    }
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp_, out_, ec);
    if (ec) fail(out_.string(), "", "cannot rename the new directory into place: " + ec.message());
  }
  fsync_dir(out_.parent_path().string());
  committed_ = true;
}

OutputDir::~OutputDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

}  // namespace awq
