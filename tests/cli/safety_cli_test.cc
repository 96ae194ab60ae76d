// Milestone rule 1 ("never lose the user's data, never write a wrong number silently"), the review
// leftovers of session 4, each a case that failed before its fix:
// - eval / compare of a model holding NaN printed "PPL: nan" / "total relative MSE nan", exit 0;
// - single-file outputs (--html, --logits-out) replaced an existing file without --force;
// - a GGUF export wrote a scale below f16's subnormal range as 0 (its group dequantized to 0);
// - `dequantize X.gguf` wrote NaN/Inf without the refusal the safetensors path makes;
// - `kill -9` mid-write left `.X.tmp-PID` that no later run removed;
// - `awq nosuch` said "A subcommand is required";
// - write errors named the hidden temporary path instead of the user's output path.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "awq/dtype.h"
#include "awq/gguf.h"
#include "test_util.h"

namespace awq {
namespace {
namespace fs = std::filesystem;

const std::string kTiny = test::data_path("tiny-llama-awq");
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A copy of tiny-llama-awq at `dir` with `edit` applied to one tensor's bytes.
void edited_copy(const std::string& dir, const std::string& tensor, const std::function<void(test::EditTensor&)>& edit) {
  test::copy_dir(kTiny, dir);
  bool found = false;
  test::rewrite_safetensors(dir + "/model.safetensors", [&](std::vector<test::EditTensor>& ts) {
    for (auto& e : ts)
      if (e.name == tensor) edit(e), found = true;
  });
  ASSERT_TRUE(found) << tensor;
}

// Sets the f16 scale of AutoAWQ's scales[group][col] (shape [k/g, n]): QuantLinear row `col`, group `group`.
void set_f16(test::EditTensor& e, int64_t group, int64_t col, uint16_t bits) {
  ASSERT_EQ(e.dtype, DType::F16);
  const size_t at = 2 * size_t(group * e.shape[1] + col);
  e.bytes[at] = char(bits & 0xFF), e.bytes[at + 1] = char(bits >> 8);
}

std::string small_text(const test::TempDir& t) {
  const std::string p = t / "text.txt";
  test::write_bytes(p, "In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness "
                       "was upon the face of the deep.");
  return p;
}

// 1. eval: a NaN scale in layer 0's down_proj made every logit NaN; eval printed "PPL: nan" and
// exited 0. Now exit 1 naming the model, the decoder layer and the first token position; with
// --json stdout is still one JSON document, with an "error" field; no --html is written.
TEST(SafetyNonfinite, EvalNamesTheLayerAndPositionAndExitsOne) {
  test::TempDir t;
  const std::string model = t / "m", text = small_text(t);
  edited_copy(model, "model.layers.1.mlp.down_proj.scales", [](test::EditTensor& e) { set_f16(e, 0, 3, 0x7E00); });  // NaN
  auto r = test::run_awq({"eval", model, "--text", text, "--ctx", "16"});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_FALSE(has(r.out, "nan")) << r.out;
  EXPECT_TRUE(has(r.err, "MODEL " + model) && has(r.err, "decoder layer 1 (model.layers.1)") && has(r.err, "NaN at token position 0"))
      << r.err;
  r = test::run_awq({"eval", model, "--text", text, "--ctx", "16", "--json", "--html", t / "r.html"});
  EXPECT_EQ(r.status, 1) << r.err;
  const auto j = nlohmann::json::parse(r.out);  // throws (fails the test) when not JSON
  ASSERT_TRUE(j.contains("error")) << r.out;
  EXPECT_TRUE(has(j["error"].get<std::string>(), "decoder layer 1")) << r.out;
  EXPECT_FALSE(fs::exists(t / "r.html"));
  // The same model as the reference is named as REF (the healthy one is MODEL).
  r = test::run_awq({"eval", kTiny, "--ref", model, "--text", text, "--ctx", "16"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(has(r.err, "REF " + model) && has(r.err, "decoder layer 1")) << r.err;
}

// 1. compare: a NaN scale gave "total relative MSE nan", exit 0. Now exit 1 naming QUANT's module,
// the first row and column of its dequantized weight, and its scales' NaN; a NaN in REF names REF's
// tensor. --json: a JSON document with "error".
TEST(SafetyNonfinite, CompareNamesTheTensorRowAndColumnAndExitsOne) {
  test::TempDir t;
  const std::string ref = t / "ref", quant = t / "q";
  ASSERT_EQ(test::run_awq({"dequantize", kTiny, "-o", ref, "--dtype", "f32", "-q"}).status, 0);
  edited_copy(quant, "model.layers.0.mlp.down_proj.scales", [](test::EditTensor& e) { set_f16(e, 1, 5, 0x7C00); });  // +Inf
  auto r = test::run_awq({"compare", ref, quant, "--html", t / "r.html"});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.err, quant + ": tensor 'model.layers.0.mlp.down_proj'") && has(r.err, "is Inf at row 5, column ") &&
              has(r.err, "1 Inf of") && has(r.err, "first at row 5, group 1"))
      << r.err;
  EXPECT_FALSE(fs::exists(t / "r.html"));
  r = test::run_awq({"compare", ref, quant, "--json"});
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(has(nlohmann::json::parse(r.out).at("error").get<std::string>(), "model.layers.0.mlp.down_proj")) << r.out;
  // NaN in REF's weight at row 2, column 7.
  test::rewrite_safetensors(ref + "/model.safetensors", [](std::vector<test::EditTensor>& ts) {
    for (auto& e : ts)
      if (e.name == "model.layers.1.self_attn.o_proj.weight") {
        const float nan = std::nanf("");
        std::memcpy(&e.bytes[4 * size_t(2 * e.shape[1] + 7)], &nan, 4);
      }
  });
  r = test::run_awq({"compare", ref, kTiny});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_TRUE(has(r.err, ref + ": tensor 'model.layers.1.self_attn.o_proj.weight': REF holds NaN at row 2, column 7")) << r.err;
}

// 2. Single-file outputs: an existing file is refused without --force (before any work), kept byte
// for byte; --force replaces it once the new one is complete; never the key file, even with --force.
TEST(SafetySingleFileOutputs, ExistingFileNeedsForce) {
  test::TempDir t;
  const std::string text = small_text(t), ref = t / "ref";
  ASSERT_EQ(test::run_awq({"dequantize", kTiny, "-o", ref, "--dtype", "f32", "-q"}).status, 0);
  const std::string keep = t / "keep.bin";
  const std::vector<std::vector<std::string>> writers = {
      {"run", kTiny, "-p", "hello", "-n", "0", "--logits-out", keep},
      {"eval", kTiny, "--text", text, "--ctx", "16", "--html", keep},
      {"compare", ref, kTiny, "--html", keep},
  };
  for (const auto& w : writers) {
    SCOPED_TRACE(w[0]);
    test::write_bytes(keep, "the user's file");
    auto r = test::run_awq(w);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(has(r.err, keep + ": exists; pass --force")) << r.err;
    EXPECT_TRUE(r.out.empty() || w[0] == "run") << r.out;  // refused before the work
    EXPECT_EQ(test::read_bytes(keep), "the user's file");
    auto forced = w;
    forced.push_back("--force");
    r = test::run_awq(forced);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(test::read_bytes(keep), "the user's file");
    EXPECT_EQ(test::entry_names(t.path()), (std::vector<std::string>{"keep.bin", "ref", "text.txt"})) << "a temporary was left";
  }
  // The key file in use is an input: no single-file output replaces it, --force or not.
  const std::string key = t / "k.key";
  ASSERT_EQ(test::run_awq({"keygen", "-o", key}).status, 0);
  const std::string key_bytes = test::read_bytes(key);
  for (const auto& w : std::vector<std::vector<std::string>>{
           {"run", kTiny, "-p", "hello", "-n", "0", "--logits-out", key, "--force", "--key-file", key},
           {"compare", ref, kTiny, "--html", key, "--force", "--key-file", key},
           {"convert", kTiny, "-o", key, "--to", "gguf", "--force", "--key-file", key, "-q"}}) {
    const auto r = test::run_awq(w);
    EXPECT_EQ(r.status, 1) << w[0] << ": " << r.err;
    EXPECT_TRUE(has(r.err, "input")) << r.err;
  }
  EXPECT_EQ(test::read_bytes(key), key_bytes);
}

// 3. A bf16/f32 scale below f16's smallest subnormal (1e-9) was written to the GGUF as 0 (that
// group dequantized to one value; with q4_k its 6-bit sub-block scale became 0 the same way).
// Refused naming the scales tensor, row and group; written as 0 with a warning under --allow-underflow.
TEST(SafetyGguf, ScaleBelowF16SubnormalIsRefused) {
  test::TempDir t;
  const std::string model = t / "m";
  // The module's scales as f32 (AutoAWQ GEMM reads F16/BF16/F32 scales), one of them 1e-9.
  edited_copy(model, "model.layers.0.mlp.down_proj.scales", [](test::EditTensor& e) {
    std::string f32(e.bytes.size() * 2, '\0');
    for (size_t i = 0; i < e.bytes.size() / 2; ++i) {
      uint16_t h;
      std::memcpy(&h, &e.bytes[2 * i], 2);
      float v = f16_to_f32(h);
      if (i == size_t(1 * e.shape[1] + 5)) v = 1e-9f;  // group 1, output row 5
      std::memcpy(&f32[4 * i], &v, 4);
    }
    e.dtype = DType::F32;
    e.bytes = f32;
  });
  for (const char* type : {"q4_1", "q4_k"}) {
    SCOPED_TRACE(type);
    const std::string out = t / (std::string(type) + ".gguf");
    auto r = test::run_awq({"convert", model, "-o", out, "--to", "gguf", "--gguf-type", type, "-q"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(has(r.err, "model.layers.0.mlp.down_proj.scales") && has(r.err, "at row 5, group 1") && has(r.err, "subnormal")) << r.err;
    EXPECT_FALSE(fs::exists(out));
    r = test::run_awq({"convert", model, "-o", out, "--to", "gguf", "--gguf-type", type, "--allow-underflow", "-q"});
    EXPECT_EQ(r.status, 0) << r.err;
    // q4_1: the group's one scale; q4_k: its four 32-column sub-blocks.
    EXPECT_TRUE(has(r.err, std::string("warning: model.layers.0.mlp.down_proj.scales: ") + (type[3] == '1' ? "1" : "4") + " block(s)") &&
                has(r.err, "first at row 5, group 1"))
        << r.err;
  }
}

// 4. `awq dequantize X.gguf` wrote a NaN d (f16 scale of a Q4_1 block) through as NaN weights; the
// safetensors path refuses them. Now refused naming the tensor and the first row/column, unless
// --allow-nonfinite (then one warning).
TEST(SafetyGguf, DequantizeOfAGgufScansForNaN) {
  test::TempDir t;
  const std::string gguf = t / "m.gguf";
  ASSERT_EQ(test::run_awq({"convert", kTiny, "-o", gguf, "--to", "gguf", "-q"}).status, 0);
  uint64_t at = 0;
  {
    GgufFile f(gguf);
    const GgufTensorInfo* ti = f.tensor("blk.1.ffn_down.weight");
    ASSERT_NE(ti, nullptr);
    ASSERT_EQ(ti->type, GgmlType::Q4_1);
    const int64_t blocks_per_row = ti->ne[0] / 32;
    at = f.data_offset() + ti->offset + uint64_t(3 * blocks_per_row + 2) * 20;  // row 3, block 2 (columns 64..95): its d
  }
  std::string bytes = test::read_bytes(gguf);
  bytes[at] = char(0x00), bytes[at + 1] = char(0x7E);  // f16 NaN
  test::write_bytes(gguf, bytes);
  auto r = test::run_awq({"dequantize", gguf, "-o", t / "out", "-q"});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "blk.1.ffn_down.weight") && has(r.err, "NaN") && has(r.err, "first at row 3, column 64")) << r.err;
  EXPECT_FALSE(fs::exists(t / "out"));
  r = test::run_awq({"dequantize", gguf, "-o", t / "out", "-q", "--allow-nonfinite"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(has(r.err, "warning: blk.1.ffn_down.weight")) << r.err;
}

// 5. kill -9 mid-write leaves `.X.tmp-PID`; the next write of X removes it when no process has that
// pid, and never a live process's, nor another file's.
TEST(SafetyStaleTemporaries, NextWriteOfTheFileRemovesDeadRunsTemporaries) {
  test::TempDir t;
  const std::string dead = t / ".m.gguf.tmp-999999999", live = t / (".m.gguf.tmp-" + std::to_string(::getpid())),
                    other = t / ".other.gguf.tmp-999999998";
  for (const auto& p : {dead, live, other}) test::write_bytes(p, "partial");
  ASSERT_EQ(test::run_awq({"convert", kTiny, "-o", t / "m.gguf", "--to", "gguf", "-q"}).status, 0);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live));   // this test process is alive
  EXPECT_TRUE(fs::exists(other));  // not a temporary of m.gguf
  // The same for the other single-file writers (run --logits-out, a safetensors file).
  const std::string dead2 = t / ".l.safetensors.tmp-999999997";
  test::write_bytes(dead2, "partial");
  ASSERT_EQ(test::run_awq({"run", kTiny, "-p", "hi", "-n", "0", "--logits-out", t / "l.safetensors"}).status, 0);
  EXPECT_FALSE(fs::exists(dead2));
}

// 6. A misspelt subcommand is named, with the list of subcommands (usage error, exit 2).
TEST(SafetyUsage, UnknownSubcommandIsNamed) {
  const auto r = test::run_awq({"nosuch", "x"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(has(r.err, "unknown subcommand 'nosuch'") && has(r.err, "inspect") && has(r.err, "dequantize")) << r.err;
  EXPECT_FALSE(has(r.err, "A subcommand is required")) << r.err;
}

// 7. A write error names the output path the user gave (the hidden temporary only in parentheses):
// it named `.out.awq-tmp-PID/model.safetensors`.
TEST(SafetyWriteErrors, NameTheUsersOutputPath) {
  test::TempDir t;
  const std::string err = t / "err", out = t / "out";
  const std::string cmd = "ulimit -f 100 && exec '" + std::string(AWQ_BINARY) + "' dequantize '" + kTiny + "' -o '" + out +
                          "' --dtype f32 -q >/dev/null 2>'" + err + "' </dev/null";
  const int rc = std::system(("/bin/bash -c \"" + cmd + "\"").c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  const std::string e = test::read_bytes(err);
  EXPECT_EQ(e.rfind("awq: error: " + out + "/model.safetensors (temporary ", 0), 0u) << e;
  EXPECT_TRUE(has(e, "File too large")) << e;
  EXPECT_EQ(test::entry_names(t.path()), std::vector<std::string>{"err"});
}

// The hostile-user pass (session 5): each case did harm or wrote a wrong result before.
TEST(SafetyHostile, FoundWhileActingAsAHostileUser) {
  test::TempDir t;
  const std::string ref = t / "ref";
  ASSERT_EQ(test::run_awq({"dequantize", kTiny, "-o", ref, "--dtype", "f32", "-q"}).status, 0);
  // A FIFO (like /dev/null, which root would have replaced by a regular file): never replaced.
  const std::string fifo = t / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  for (const auto& w : std::vector<std::vector<std::string>>{{"compare", ref, kTiny, "--html", fifo, "--force"},
                                                             {"convert", kTiny, "-o", fifo, "--to", "gguf", "--force", "-q"}}) {
    const auto r = test::run_awq(w);
    EXPECT_EQ(r.status, 1) << w[0] << ": " << r.err;
    EXPECT_TRUE(has(r.err, "not a regular file")) << r.err;
    EXPECT_TRUE(fs::is_fifo(fifo));
  }
  // A directory as the text read as empty: tokenize printed {"ids": []}, exit 0.
  auto r = test::run_awq({"tokenize", kTiny, "--text", t.path().string()});
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_TRUE(has(r.err, "is a directory")) << r.err;
  // A model path that is not UTF-8: --json failed after the work ("invalid UTF-8 byte"), exit 1.
  const std::string odd = t / "m\xff";
  test::copy_dir(kTiny, odd);
  r = test::run_awq({"compare", ref, odd, "--json"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(nlohmann::json::parse(r.out)["layers"].empty());
  // NaN passed CLI::Range: every layer was flagged below a NaN cosine bar.
  EXPECT_EQ(test::run_awq({"compare", ref, kTiny, "--cosine-bar", "nan"}).status, 2);
  // 10000 threads were started (eval, compare, quantize took any count); now 0..1024.
  EXPECT_EQ(test::run_awq({"compare", ref, kTiny, "--threads", "10000"}).status, 2);
  EXPECT_EQ(test::run_awq({"quantize", kTiny, "-o", t / "q", "--threads", "-1"}).status, 2);
  // An unknown option where the subcommand goes.
  r = test::run_awq({"--nosuch"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(has(r.err, "unknown option '--nosuch'")) << r.err;
}

}  // namespace
}  // namespace awq
