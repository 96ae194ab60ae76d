#include "io/temp_registry.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "awq/error.h"

// Why a signal handler and not a sigwait thread: a sigwait thread only sees the signals that every
// other thread blocks, and the mask must be set before any thread starts (the thread pool, a test
// harness, a program embedding the library). A handler works in any process. Its price is that it
// may call only async-signal-safe functions: the registry is a fixed array of atomics and path
// buffers (no allocation, no locks), and the tree is removed with openat/unlinkat/getdents64/
// lseek/close only (no readdir, no std::filesystem). The handler then restores the action the
// process had before (the default one for the `awq` command) and re-raises the signal, so the exit
// status still says which signal ended the run.

namespace awq::temp_registry {
namespace {

enum State : int { kFree, kReserving, kLive, kCommitting, kCleaning };
constexpr size_t kSlots = 16;
constexpr size_t kPathMax = 4096;
struct Slot {
  std::atomic<int> state{kFree};
  char path[kPathMax];
};
std::array<Slot, kSlots> g_slots;
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
struct sigaction g_previous[3];
bool g_installed[3];
static_assert(std::atomic<int>::is_always_lock_free, "the handler needs lock-free atomics");

struct Dirent64 {  // the kernel's struct linux_dirent64
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

bool is_dot(const char* n) { return n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0)); }

// Removes `name` under `dirfd` and everything below it; async-signal-safe. Files the writer creates
// while we scan make a pass miss them, so a directory is scanned again until it is empty.
void remove_tree_at(int dirfd, const char* name, int depth) {
  if (::unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return;
  if (depth > 16) return;
  const int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  for (int pass = 0; pass < 4; ++pass) {
    ::lseek(fd, 0, SEEK_SET);
    alignas(8) char buf[1024];
    for (;;) {
      const long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
      if (n <= 0) break;
      for (long off = 0; off < n;) {
        const auto* d = reinterpret_cast<const Dirent64*>(buf + off);
        if (!is_dot(d->d_name)) remove_tree_at(fd, d->d_name, depth + 1);
        off += d->d_reclen;
      }
    }
    if (::unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno != ENOTEMPTY) break;
  }
  ::close(fd);
}

extern "C" void on_terminating_signal(int sig) {
  const int saved_errno = errno;
  for (auto& s : g_slots) {
    int expected = kLive;
    // A slot mid-rename (kCommitting) is left alone: its path may already be the new output.
    // If the process dies there, the next run removes the temporary by its dead pid.
    if (s.state.compare_exchange_strong(expected, kCleaning)) remove_tree_at(AT_FDCWD, s.path, 0);
  }
  for (int i = 0; i < 3; ++i)
    if (kSignals[i] == sig) ::sigaction(sig, &g_previous[i], nullptr);
  ::raise(sig);  // pending until this handler returns, then the restored action takes effect
  errno = saved_errno;
}

void install_handlers() {
  for (int i = 0; i < 3; ++i) {
    struct sigaction old {};
    if (::sigaction(kSignals[i], nullptr, &old) != 0) continue;
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN) continue;  // ignored stays ignored
    struct sigaction sa {};
    sa.sa_handler = on_terminating_signal;
    ::sigemptyset(&sa.sa_mask);
    for (int s : kSignals) ::sigaddset(&sa.sa_mask, s);  // one cleanup at a time
    g_previous[i] = old;
    g_installed[i] = ::sigaction(kSignals[i], &sa, nullptr) == 0;
  }
}

[[noreturn]] void wait_for_death() {
  for (;;) ::pause();  // a handler is removing this directory and will re-raise the signal
}

}  // namespace

int add(const std::string& path) {
  static std::once_flag once;
  std::call_once(once, install_handlers);
  if (path.size() >= kPathMax) fail(path, "", "path too long for a temporary directory");
  for (size_t i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (!g_slots[i].state.compare_exchange_strong(expected, kReserving)) continue;
    std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
    g_slots[i].state.store(kLive);
    return int(i);
  }
  fail(path, "", "too many output directories open at once in this process");
}

int try_add(const std::string& path) noexcept {
  try {
    return add(path);
  } catch (...) {
    return -1;
  }
}

void begin_commit(int slot) {
  if (slot < 0) return;
  int expected = kLive;
  if (!g_slots[size_t(slot)].state.compare_exchange_strong(expected, kCommitting)) wait_for_death();
}

void end_commit(int slot) {
  if (slot < 0) return;
  g_slots[size_t(slot)].state.store(kLive);
}

void remove(int slot) {
  if (slot < 0) return;
  int expected = kLive;
  if (g_slots[size_t(slot)].state.compare_exchange_strong(expected, kFree)) return;
  if (expected == kCleaning) wait_for_death();
  g_slots[size_t(slot)].state.store(kFree);
}

}  // namespace awq::temp_registry
