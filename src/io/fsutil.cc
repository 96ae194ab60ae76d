#include "awq/fsutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>  // renameat2, RENAME_NOREPLACE (glibc >= 2.28)
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "awq/error.h"
#include "io/temp_registry.h"

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

constexpr const char* kFileTmpTag = ".tmp-";
constexpr const char* kDirTmpTag = ".awq-tmp-";

void write_fd_all(int fd, const char* c, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail(output_path_for_errors(path), "", std::string("write failed: ") + std::strerror(errno));
    }
    c += w;
    n -= size_t(w);
  }
}

// The pid after `tag` at the end of a hidden name ".<name><tag><pid>", with <name> returned in
// `name`; -1 when `n` is not such a name.
long tagged_pid(const std::string& n, const char* tag, std::string* name) {
  if (n.size() < 2 || n[0] != '.') return -1;
  const size_t at = n.rfind(tag);
  if (at == std::string::npos || at <= 1) return -1;
  const std::string pid = n.substr(at + std::strlen(tag));
  if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) return -1;
  if (name) *name = n.substr(1, at - 1);
  return std::stol(pid);
}

bool flags_unsupported(int e) { return e == EINVAL || e == ENOSYS || e == ENOTSUP || e == EOPNOTSUPP; }

}  // namespace

std::string temp_file_for(const std::string& path) {
  const fs::path p(path);
  std::string n = ".";
  n += p.filename().string();
  n += kFileTmpTag;
  n += std::to_string(::getpid());
  return (p.parent_path() / n).string();
}

void remove_stale_file_temporaries(const std::string& path) {
  const fs::path p(path);
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  const std::string want = p.filename().string();
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name;
    const long pid = tagged_pid(e.path().filename().string(), kFileTmpTag, &name);
    if (pid <= 0 || name != want || pid == long(::getpid())) continue;
    // Only a pid no process holds: a live process's temporary (any program's) is never removed.
    if (::kill(pid_t(pid), 0) == 0 || errno != ESRCH) continue;
    std::error_code ec2;
    if (!e.is_directory(ec2)) fs::remove(e.path(), ec2);
  }
}

void publish_file(const std::string& tmp, const std::string& path, bool replace) {
  if (replace) {
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      fail(output_path_for_errors(path), "", std::string("cannot rename the finished temporary ") + user_visible_path(tmp) +
                                                 " into place: " + std::strerror(errno));
    return;
  }
  int e = 0;
  if (!std::getenv("AWQ_TEST_NO_RENAMEAT2") && ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0) return;
  e = std::getenv("AWQ_TEST_NO_RENAMEAT2") ? EINVAL : errno;
  if (flags_unsupported(e)) {  // link(2) never replaces either; then the temporary's name goes
    if (::link(tmp.c_str(), path.c_str()) == 0) {
      ::unlink(tmp.c_str());
      return;
    }
    e = errno;
  }
  if (e == EEXIST)
    fail(user_visible_path(path), "", "exists (created while this command ran); it is not replaced without --force, nothing written");
  fail(output_path_for_errors(path), "", std::string("cannot rename the finished temporary into place: ") + std::strerror(e));
}

void write_file_atomic(const std::string& path, const std::string& content, bool replace, unsigned mode) {
  remove_stale_file_temporaries(path);
  const std::string tmp = temp_file_for(path);
  const int slot = temp_registry::try_add(fs::absolute(tmp).string());  // before it exists: SIGINT removes it
  ::unlink(tmp.c_str());  // a leftover of an earlier process with our pid; never followed (O_EXCL)
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(mode));
  if (fd < 0) {
    const int e = errno;
    temp_registry::remove(slot);
    fail(output_path_for_errors(path), "", std::string("cannot create a temporary file beside it: ") + std::strerror(e));
  }
  try {
    write_fd_all(fd, content.data(), content.size(), tmp);
    if (::fsync(fd) != 0) fail(output_path_for_errors(path), "", std::string("fsync failed: ") + std::strerror(errno));
    ::close(fd);
    fd = -1;
    temp_registry::begin_commit(slot);
    publish_file(tmp, path, replace);
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    temp_registry::remove(slot);
    throw;
  }
  temp_registry::remove(slot);  // the temporary's name is gone (renamed)
}

void copy_file_atomic(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) fail(from, "", "cannot open for reading");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail(from, "", "read failed");
  write_file_atomic(to, content);
}

void check_output_file(const std::string& path, bool force, const std::vector<std::string>& inputs, const std::string& option) {
  if (path.empty()) throw Error(option + ": an empty file name");
  refuse_output_overlapping_inputs(path, inputs);
  const fs::path p(path);
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  std::error_code ec;
  if (p.filename().empty() || p.filename() == "." || p.filename() == "..")
    fail(path, "", option + " names a directory; it writes one file");
  if (!fs::is_directory(dir, ec)) fail(path, "", "the " + option + " file's directory " + dir.string() + " does not exist");
  if (::access(dir.c_str(), W_OK) != 0) fail(path, "", "the " + option + " file's directory " + dir.string() + " is not writable");
  const fs::file_status st = fs::symlink_status(p, ec);
  const fs::file_status target = fs::status(p, ec);  // through a symlink
  if (fs::is_directory(target)) fail(path, "", "is a directory; " + option + " writes one file");
  // A device, FIFO or socket (/dev/null, say) would be replaced by the rename, --force or not.
  if (fs::exists(target) && !fs::is_regular_file(target))
    fail(path, "", "exists and is not a regular file (a device, FIFO or socket); " + option + " writes a regular file and never replaces one");
  if (fs::exists(st) && !force) fail(path, "", "exists; pass --force to replace it (only once the new file is complete)");
}

std::string user_visible_path(const std::string& path) {
  fs::path out;
  bool changed = false;
  for (const fs::path& part : fs::path(path)) {
    const std::string n = part.string();
    std::string name;
    if (tagged_pid(n, kDirTmpTag, &name) > 0 || tagged_pid(n, kFileTmpTag, &name) > 0) {
      out /= name;
      changed = true;
    } else {
      out /= part;
    }
  }
  return changed ? out.string() : path;
}

std::string output_path_for_errors(const std::string& path) {
  const std::string u = user_visible_path(path);
  return u == path ? path : u + " (temporary " + path + ")";
}

}  // namespace awq
