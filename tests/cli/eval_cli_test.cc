// `awq eval` through the binary: the bundled model against itself (KLD 0, top-1 agreement 1, no
// divergent layer) with --json holding exactly the keys the issue names, the progress bar with ETA
// on a terminal (a pseudo-terminal here), the HTML report written, usage errors (exit 2) and
// refusals (exit 1) with one line on stderr.
#include <gtest/gtest.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace awq {
namespace {

std::string bundled() { return test::data_path("../../models/kjv-llama"); }

// The bundled model's eval.txt cut to its first `bytes` bytes at a line end.
std::string short_text(const test::TempDir& tmp, size_t bytes) {
  std::string s = test::read_bytes(bundled() + "/eval.txt");
  s = s.substr(0, s.rfind('\n', bytes) + 1);
  test::write_bytes(tmp / "short.txt", s);
  return tmp / "short.txt";
}

TEST(EvalCli, BundledModelAgainstItself) {
  test::TempDir tmp;
  const auto r = test::run_awq({"eval", bundled(), "--ref", bundled(), "--text", short_text(tmp, 1500), "--ctx", "64",
                                "--stride", "48", "--threads", "2", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  // The keys, with their types.
  for (const char* k : {"ppl", "ppl_ref", "kld_mean", "same_top_p"}) EXPECT_TRUE(j.at(k).is_number_float()) << k;
  for (const char* k : {"tokens", "ctx", "stride"}) EXPECT_TRUE(j.at(k).is_number_integer()) << k;
  EXPECT_EQ(j["ctx"], 64);
  EXPECT_EQ(j["stride"], 48);
  EXPECT_GT(j["tokens"].get<int64_t>(), 100);
  ASSERT_TRUE(j.at("layers").is_array());
  ASSERT_EQ(j["layers"].size(), 4u);  // the bundled model's decoder layers
  for (size_t i = 0; i < j["layers"].size(); ++i) {
    const auto& l = j["layers"][i];
    EXPECT_EQ(l.at("layer"), int64_t(i));
    EXPECT_EQ(l.at("cosine").get<double>(), 1.0);
    EXPECT_EQ(l.at("rel_error").get<double>(), 0.0);
  }
  EXPECT_TRUE(j.at("first_divergent_layer").is_null());
  // The model against itself: KLD 0, top-1 agreement 100 %, the same perplexity.
  EXPECT_EQ(j["kld_mean"].get<double>(), 0.0);
  EXPECT_EQ(j["same_top_p"].get<double>(), 1.0);
  EXPECT_EQ(j["ppl"].get<double>(), j["ppl_ref"].get<double>());
  EXPECT_GT(j["ppl"].get<double>(), 1.0);
  EXPECT_NE(j["method"].get<std::string>().find("BOS added once"), std::string::npos) << j["method"];
}

TEST(EvalCli, CacheBytesStreamsBothModelsWithTheSameReport) {
  test::TempDir tmp;
  const std::vector<std::string> cmd = {"eval", bundled(), "--ref", bundled(), "--text", short_text(tmp, 600),
                                        "--ctx", "64", "--threads", "1", "--json"};
  const auto whole = test::run_awq(cmd);
  ASSERT_EQ(whole.status, 0) << whole.err;
  std::vector<std::string> streamed = cmd;
  for (const char* a : {"--cache-bytes", "1", "--prefetch", "2"}) streamed.push_back(a);
  const auto r = test::run_awq(streamed);
  ASSERT_EQ(r.status, 0) << r.err;
  auto a = nlohmann::json::parse(r.out), b = nlohmann::json::parse(whole.out);
  for (auto* j : {&a, &b}) j->erase("seconds"), j->erase("tokens_per_s");  // timings, the only fields that may differ
  EXPECT_EQ(a.dump(), b.dump());
  EXPECT_EQ(test::run_awq({"eval", bundled(), "--cache-bytes", "-5"}).status, 2);
}

TEST(EvalCli, TextReportAndHtmlFile) {
  test::TempDir tmp;
  const auto r = test::run_awq({"eval", bundled(), "--ref", bundled(), "--text", short_text(tmp, 800), "--ctx", "64",
                                "--threads", "2", "--html", tmp / "eval.html"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Mean    KLD:   0.000000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Same top p: 100.000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no divergent layer"), std::string::npos) << r.out;
  const std::string html = test::read_bytes(tmp / "eval.html");
  EXPECT_NE(html.find("id=\"divergence\""), std::string::npos);
  EXPECT_NE(html.find("id=\"kld\""), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos) << "self-contained, no script";
}

TEST(EvalCli, PerplexityOnlyWithoutRef) {
  test::TempDir tmp;
  const auto r =
      test::run_awq({"eval", bundled(), "--text", short_text(tmp, 800), "--ctx", "32", "--threads", "2", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* k : {"ppl", "tokens", "ctx", "stride"}) EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["stride"], 32) << "stride defaults to ctx";
  EXPECT_FALSE(j.contains("ppl_ref"));
  EXPECT_FALSE(j.contains("layers"));
  EXPECT_TRUE(r.err.empty()) << "no progress bar when stderr is not a terminal: " << r.err;
}

// Runs awq with stdout and stderr on a pseudo-terminal; returns what it printed and the status.
std::pair<std::string, int> run_on_terminal(const std::vector<std::string>& args) {
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    std::vector<std::string> argv_s{AWQ_BINARY};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(AWQ_BINARY, argv.data());
    ::_exit(127);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO once the child closed the terminal
    out.append(buf, size_t(n));
  }
  ::close(master);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return {out, WIFEXITED(st) ? WEXITSTATUS(st) : -1};
}

TEST(EvalCli, ProgressBarWithEtaOnATerminal) {
  test::TempDir tmp;
  const auto [out, status] =
      run_on_terminal({"eval", bundled(), "--text", short_text(tmp, 3000), "--ctx", "32", "--threads", "2"});
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("eval ["), std::string::npos) << out;
  EXPECT_NE(out.find("ETA"), std::string::npos) << out;
  EXPECT_NE(out.find("100.0%"), std::string::npos) << out;
  EXPECT_NE(out.find("layer-windows"), std::string::npos) << out;
}

TEST(EvalCli, UsageErrorsAndRefusals) {
  test::TempDir tmp;
  const std::string text = short_text(tmp, 800);
  auto r = test::run_awq({"eval", bundled(), "--text", text, "--ctx", "32", "--stride", "33"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("--stride 33"), std::string::npos) << r.err;
  r = test::run_awq({"eval", bundled(), "--text", text, "--ctx", "1"});
  EXPECT_EQ(r.status, 2) << r.err;
  r = test::run_awq({"eval", bundled(), "--text", tmp / "missing.txt"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("missing.txt"), std::string::npos) << r.err;
  r = test::run_awq({"eval", bundled(), "--text", text, "--ctx", "100000"});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("max_position_embeddings"), std::string::npos) << r.err;
  // --html onto the text it reads: refused, the text kept.
  const std::string before = test::read_bytes(text);
  r = test::run_awq({"eval", bundled(), "--text", text, "--ctx", "32", "--html", text});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(test::read_bytes(text), before);
  // A reference of another vocabulary.
  r = test::run_awq({"eval", bundled(), "--ref", test::data_path("models/llama2"), "--text", text, "--ctx", "32"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("vocabularies differ"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace awq
