// OutputDir: all-or-nothing output directories (contract in include/awq/fsutil.h).
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>  // renameat2, RENAME_NOREPLACE, RENAME_EXCHANGE (glibc >= 2.28)
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "awq/error.h"
#include "awq/fsutil.h"
#include "io/temp_registry.h"

namespace fs = std::filesystem;

namespace awq {
namespace {

constexpr const char* kTmpTag = ".awq-tmp-";
constexpr const char* kOldTag = ".awq-old-";  // the fallback replace path's old tree

// "<parent>/.<name><tag><pid>" (appended piecewise: GCC 12 warns falsely on "." + string).
fs::path hidden_sibling(const fs::path& out, const char* tag) {
  std::string n = ".";
  n += out.filename().string();
  n += tag;
  n += std::to_string(::getpid());
  return out.parent_path() / n;
}

fs::path resolved(const fs::path& p) {
  std::error_code ec;
  fs::path r = fs::weakly_canonical(fs::absolute(p, ec), ec);
  if (ec) r = fs::absolute(p).lexically_normal();
  if (r.filename().empty()) r = r.parent_path();  // "dir/" -> "dir"
  return r;
}

// True when `inner` is `outer` or lies below it (whole path components, both resolved).
bool within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i)
    if (i == inner.end() || *i != *o) return false;
  return true;
}

// The input itself and, for a directory, where each of its entries really lives.
std::vector<fs::path> resolved_input_paths(const std::string& input) {
  std::vector<fs::path> r{resolved(input)};
  std::error_code ec;
  if (!fs::is_directory(r.front(), ec)) return r;
  for (const auto& e : fs::directory_iterator(r.front(), ec)) {
    std::error_code ec2;
    if (!e.is_symlink(ec2)) continue;
    fs::path t = fs::canonical(e.path(), ec2);
    if (!ec2) r.push_back(t);
  }
  return r;
}

// renameat2 with one flag; -1/EINVAL when the test hook AWQ_TEST_NO_RENAMEAT2 is set (to exercise
// the fallback a filesystem without renameat2 flags takes).
int rename_flags(const fs::path& from, const fs::path& to, unsigned flags) {
  if (std::getenv("AWQ_TEST_NO_RENAMEAT2")) {
    errno = EINVAL;
    return -1;
  }
  return ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags);
}

// Filesystems (some network and FUSE ones, old kernels) refuse renameat2's flags this way.
bool flags_unsupported(int e) { return e == EINVAL || e == ENOSYS || e == ENOTSUP || e == EOPNOTSUPP; }

// Test hook for a deterministic race between two processes: with AWQ_TEST_COMMIT_GATE=PATH set,
// commit() creates PATH.<pid>.ready and waits (up to 60 s) until PATH exists.
void test_commit_gate() {
  const char* gate = std::getenv("AWQ_TEST_COMMIT_GATE");
  if (!gate) return;
  const std::string ready = std::string(gate) + "." + std::to_string(::getpid()) + ".ready";
  const int fd = ::open(ready.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (::access(gate, F_OK) != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

// Whether a temporary named for `pid` belongs to a run that can no longer finish: no such process,
// or the pid now belongs to another program (pids are reused) than the one this process runs.
// A live process we may not inspect (another user's) is given the benefit of the doubt.
bool owner_gone(pid_t pid) {
  if (pid == ::getpid()) return true;  // a leftover of an earlier process with our pid
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::error_code ec, ec2;
  std::string theirs = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec).string();
  std::string ours = fs::read_symlink("/proc/self/exe", ec2).string();
  for (std::string* s : {&theirs, &ours})  // a binary rebuilt while it runs reads "PATH (deleted)"
    if (s->size() > 10 && s->compare(s->size() - 10, 10, " (deleted)") == 0) s->resize(s->size() - 10);
  return !ec && !ec2 && theirs != ours;
}

// Removes the temporaries of killed runs (kill -9 cannot be caught) beside any OUT_DIR in
// `parent`: hidden ".<name>.awq-tmp-<pid>" / ".<name>.awq-old-<pid>" entries whose owner is gone
// (owner_gone). Nothing else is touched: "<name>.awq-progress" (a resumable command's saved
// progress) and anything not ending in one of those tags and a pid are never removed.
void remove_stale_temporaries(const fs::path& parent) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() < 2 || n[0] != '.') continue;
    for (const char* tag : {kTmpTag, kOldTag}) {
      const size_t at = n.rfind(tag);
      if (at == std::string::npos || at == 0) continue;
      const std::string pid = n.substr(at + std::strlen(tag));
      if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) continue;
      if (!owner_gone(pid_t(std::stol(pid)))) continue;
      std::error_code ec2;
      fs::remove_all(e.path(), ec2);
    }
  }
}

}  // namespace

void refuse_output_overlapping_inputs(const std::string& out_dir, const std::vector<std::string>& inputs) {
  const fs::path out = resolved(out_dir);
  for (const auto& in : inputs) {
    for (const fs::path& r : resolved_input_paths(in)) {
      const std::string both = "OUT_DIR " + out_dir + " (" + out.string() + ") and the input " + in + " (" + r.string() + ")";
      if (out == r) fail(out_dir, "", "is the input: " + both + " are the same; writing there would destroy it, even with --force");
      if (within(r, out))
        fail(out_dir, "", "contains the input: " + both + "; replacing it would delete the input, even with --force");
      if (within(out, r)) fail(out_dir, "", "lies inside the input: " + both + "; the input is never written into");
    }
  }
}

fs::path progress_dir_for(const std::string& out_dir) {
  fs::path out = fs::absolute(out_dir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  return out.parent_path() / (out.filename().string() + ".awq-progress");
}

OutputDir::OutputDir(const std::string& out_dir, bool force, const std::vector<std::string>& inputs)
    : out_(fs::absolute(out_dir).lexically_normal()), force_(force) {
  if (out_.filename().empty()) out_ = out_.parent_path();
  refuse_output_overlapping_inputs(out_dir, inputs);
  std::error_code ec;
  if (fs::exists(out_, ec)) {
    if (!fs::is_directory(out_, ec)) fail(out_.string(), "", "exists and is not a directory");
    if (!fs::is_empty(out_, ec) && !force_)
      fail(out_.string(), "", "output directory exists and is not empty (use --force to replace it)");
  } else if (!fs::exists(out_.parent_path(), ec)) {
    fail(out_.string(), "", "parent directory does not exist");
  }
  remove_stale_temporaries(out_.parent_path());
  tmp_ = hidden_sibling(out_, kTmpTag);
  slot_ = temp_registry::add(tmp_.string());  // before it exists, so a signal never misses it
  fs::remove_all(tmp_, ec);
  if (!fs::create_directory(tmp_, ec)) {
    temp_registry::remove(slot_);
    fail(out_.string(), "", "cannot create its temporary directory " + tmp_.string() + ": " + ec.message());
  }
}

// Without --force: the rename itself refuses an existing OUT_DIR (RENAME_NOREPLACE), so a run that
// passed the constructor's check but lost the race to another run fails here and writes nothing.
// An empty existing OUT_DIR (e.g. made by `mkdir`) holds nothing to lose: rmdir removes it only if
// it is still empty at that instant, then the rename is tried again.
// Fallback where renameat2's flags are refused: plain rename(2), which itself refuses to replace a
// non-empty directory (ENOTEMPTY/EEXIST) and a non-directory, so only an OUT_DIR that is empty at
// that instant can be replaced there; no lock (and so no lock file) is needed.
void OutputDir::place_new() {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (rename_flags(tmp_, out_, RENAME_NOREPLACE) == 0) return;
    const int e = errno;
    if (flags_unsupported(e)) {
      if (std::rename(tmp_.c_str(), out_.c_str()) == 0) return;
      if (errno == ENOTEMPTY || errno == EEXIST) break;
      fail(out_.string(), "", std::string("cannot rename the new directory into place: ") + std::strerror(errno));
    }
    if (e != EEXIST && e != ENOTEMPTY) fail(out_.string(), "", std::string("cannot rename the new directory into place: ") + std::strerror(e));
    if (::rmdir(out_.c_str()) != 0 && errno != ENOENT) {
      if (errno == ENOTDIR) fail(out_.string(), "", "exists and is not a directory; nothing written");
      break;  // not empty (ENOTEMPTY/EEXIST) or not ours to remove
    }
  }
  fail(out_.string(), "", "another run wrote this output directory first (it exists and is not empty now); nothing written (use --force to replace it)");
}

// With --force: RENAME_EXCHANGE swaps the complete new tree with the existing OUT_DIR in one step,
// then the old tree (now at the temporary's name) is removed. OUT_DIR absent: placed as new (a run
// that creates it in between is then swapped with, as --force asks).
// Fallback where renameat2's flags are refused: move the old tree aside to ".<name>.awq-old-<pid>",
// rename the new one in, remove the old one. There OUT_DIR is briefly absent, but the old tree is
// never lost: if the second rename fails it is moved back, and if the process is killed the next
// run finds it by its dead pid.
void OutputDir::replace_existing() {
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (rename_flags(tmp_, out_, RENAME_EXCHANGE) == 0) return;
    int e = errno;
    if (e == ENOENT) {
      if (rename_flags(tmp_, out_, RENAME_NOREPLACE) == 0) return;
      e = errno;
      if (e == EEXIST || e == ENOTEMPTY) continue;  // created meanwhile: exchange with it
    }
    if (!flags_unsupported(e)) fail(out_.string(), "", std::string("cannot swap the new directory into place: ") + std::strerror(e));
    // Fallback without renameat2 flags.
    std::error_code ec;
    if (!fs::exists(out_, ec)) {
      if (std::rename(tmp_.c_str(), out_.c_str()) == 0) return;
      fail(out_.string(), "", std::string("cannot rename the new directory into place: ") + std::strerror(errno));
    }
    const fs::path old = hidden_sibling(out_, kOldTag);
    fs::remove_all(old, ec);
    fs::rename(out_, old, ec);
    if (ec) fail(out_.string(), "", "cannot move the existing directory aside: " + ec.message());
    fs::rename(tmp_, out_, ec);
    if (ec) {
      std::error_code ec2;
      fs::rename(old, out_, ec2);
      fail(out_.string(), "", "cannot rename the new directory into place: " + ec.message());
    }
    fs::rename(old, tmp_, ec);  // the old tree takes the temporary's name: removed below, or by a signal
    if (ec) fs::remove_all(old, ec);
    return;
  }
  fail(out_.string(), "", "could not swap the new directory into place (it kept changing)");
}

void OutputDir::commit() {
  fsync_dir(tmp_.string());
  test_commit_gate();
  temp_registry::begin_commit(slot_);
  try {
    if (force_) replace_existing();
    else place_new();
  } catch (...) {
    temp_registry::end_commit(slot_);
    throw;  // the destructor removes the temporary
  }
  temp_registry::end_commit(slot_);  // the temporary's name now holds the old tree, or nothing
  committed_ = true;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  temp_registry::remove(slot_);
  fsync_dir(out_.parent_path().string());
}

OutputDir::~OutputDir() {
  if (committed_ || slot_ < 0) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  temp_registry::remove(slot_);
}

}  // namespace awq
