// OutputDir's contract (include/awq/fsutil.h): overlap refusals, atomic replacement, stale
// temporaries, the reserved progress directory.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "awq/error.h"
#include "awq/fsutil.h"
#include "test_util.h"

namespace awq {
namespace {

namespace fs = std::filesystem;

TEST(OutputDir, RefusesOverlapWithTheInputBeforeTouchingAnything) {
  test::TempDir t;
  fs::create_directories(t / "p/m");
  test::write_bytes(t / "p/m/w", "weights");
  fs::create_directory_symlink(t / "p/m", t / "p/ln");
  for (const std::string out : {t / "p/m", t / "p", t / "p/m/sub", t / "p/ln", t / "p/ln/x/.."}) {
    try {
      OutputDir o(out, /*force=*/true, {t / "p/m"});
      ADD_FAILURE() << out << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(t / "p/m"), std::string::npos) << e.what();
    }
    EXPECT_EQ(test::read_bytes(t / "p/m/w"), "weights");
    EXPECT_EQ(test::entry_names(t / "p"), (std::vector<std::string>{"ln", "m"})) << out;
  }
  // Siblings and look-alike names ("m2" starts with "m") are not inside.
  for (const std::string out : {t / "p/m2", t / "p/other"}) {
    OutputDir o(out, false, {t / "p/m"});
    o.commit();
  }
  EXPECT_TRUE(fs::is_directory(t / "p/m2"));
}

// --force swaps the new tree in with RENAME_EXCHANGE: a reader polling OUT_DIR never finds it
// missing while it is replaced again and again.
TEST(OutputDir, ForcedReplaceNeverLeavesOutDirMissing) {
  test::TempDir t;
  fs::create_directory(t / "out");
  test::write_bytes(t / "out/f", "0");  // before the reader starts polling
  std::atomic<bool> stop{false};
  std::atomic<long> missing{0}, polls{0};
  std::thread reader([&] {
    while (!stop) {
      std::error_code ec;
      if (!fs::exists(t / "out/f", ec)) ++missing;
      ++polls;
    }
  });
  for (int i = 0; i < 200; ++i) {
    OutputDir o(t / "out", true, {});
    test::write_bytes(o.file("f"), std::to_string(i));
    o.commit();
  }
  stop = true;
  reader.join();
  EXPECT_GT(polls.load(), 0);
  EXPECT_EQ(missing.load(), 0);
  EXPECT_EQ(test::read_bytes(t / "out/f"), "199");
  EXPECT_EQ(test::entry_names(t.path()), std::vector<std::string>{"out"});
}

TEST(OutputDir, WithoutRenameat2FlagsStillReplacesWithForceAndRefusesWithout) {
  test::TempDir t;
  ::setenv("AWQ_TEST_NO_RENAMEAT2", "1", 1);
  fs::create_directory(t / "out");
  test::write_bytes(t / "out/old", "1");
  {
    OutputDir o(t / "out", true, {});
    test::write_bytes(o.file("new"), "2");
    o.commit();
  }
  EXPECT_FALSE(fs::exists(t / "out/old"));
  EXPECT_EQ(test::read_bytes(t / "out/new"), "2");
  {
    OutputDir o(t / "out2", false, {});
    fs::create_directory(t / "out2");  // another run won meanwhile
    test::write_bytes(t / "out2/theirs", "x");
    EXPECT_THROW(o.commit(), Error);
  }
  ::unsetenv("AWQ_TEST_NO_RENAMEAT2");
  EXPECT_EQ(test::read_bytes(t / "out2/theirs"), "x");
  EXPECT_EQ(test::entry_names(t.path()), (std::vector<std::string>{"out", "out2"}));
}

TEST(OutputDir, LosingTheRaceAtTheRenameLeavesTheWinnerAndNothingElse) {
  test::TempDir t;
  OutputDir o(t / "out", false, {});
  test::write_bytes(o.file("mine"), "1");
  fs::create_directory(t / "out");  // the other run committed after our constructor's check
  test::write_bytes(t / "out/theirs", "2");
  try {
    o.commit();
    ADD_FAILURE() << "replaced another run's output without --force";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another run wrote this output directory first"), std::string::npos) << e.what();
  }
  EXPECT_EQ(test::read_bytes(t / "out/theirs"), "2");
  EXPECT_FALSE(fs::exists(t / "out/mine"));
}

TEST(OutputDir, StaleTemporariesGoTheReservedProgressDirStays) {
  test::TempDir t;
  // Killed runs: a dead pid, and a pid reused by a process that is not awq (sleep).
  const pid_t sleeper = ::fork();
  if (sleeper == 0) {
    ::execlp("sleep", "sleep", "30", (char*)nullptr);
    ::_exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let it exec
  for (const std::string& n : std::vector<std::string>{".out.awq-tmp-999999999", ".other.awq-tmp-" + std::to_string(sleeper), ".out.awq-old-999999998"}) {
    fs::create_directory(t / n);
    test::write_bytes(t / (n + "/partial"), "x");
  }
  // Not temporaries: a resumable command's saved progress, and a user's own hidden directory.
  fs::create_directory(progress_dir_for(t / "out"));
  test::write_bytes((progress_dir_for(t / "out") / "state").string(), "hours of work");
  fs::create_directory(t / ".out.awq-tmp-notapid");
  {
    OutputDir o(t / "out", false, {});
    o.commit();
  }
  ::kill(sleeper, SIGKILL);
  ::waitpid(sleeper, nullptr, 0);
  EXPECT_EQ(progress_dir_for(t / "out"), t.path() / "out.awq-progress");
  EXPECT_EQ(test::read_bytes(t / "out.awq-progress/state"), "hours of work");
  EXPECT_EQ(test::entry_names(t.path()), (std::vector<std::string>{".out.awq-tmp-notapid", "out", "out.awq-progress"}));
}

}  // namespace
}  // namespace awq
