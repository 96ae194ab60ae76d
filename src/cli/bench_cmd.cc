// awq bench [dequant|gemv|gemm|dense|attention]: times our 4-bit kernels against OpenBLAS f32, our dense bf16 kernel
// and the scalar reference on real-model shapes, with the read bandwidth measured in the same run.
//
// Method (also printed in the header):
//  * cold (default): the packed weights rotate through copies totalling >= max(8x LLC, 256 MiB),
//    so every run reads them from DRAM; baselines rotate their own weights the same way.
//    --hot: one copy, reused (as ggml's test-backend-ops perf does).
//  * read bandwidth: a vector-load stream over a buffer of max(8x LLC, 256 MiB) (cold) or of the
//    packed weights' size (hot), same threads.
//  * every row interleaves its jobs (ours, OpenBLAS, dense bf16, read stream; int16 where gemm takes
//    the AMX-INT8 kernel: also the int16 VNNI/maddubs kernels, AMX forced off; dequant: ours, copy,
//    read stream) round by round, so all sample the same machine load.
//  * time: median of the runs, +- half the inter-quartile range, and the best run; rounds continue
//    until they took >= --min-time seconds and every job ran >= 5 times (dense bf16 and the scalar
//    reference run once at M >= 64; the scalar reference runs after the rounds).
//  * bytes: packed weights (codes + scales/zeros [+ bias]) + activations (f32) + outputs (f32).
//    For dequant: packed weights + the output written.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "awq/error.h"
#include "awq/kernels.h"
#include "awq/model_ops.h"
#include "awq/quant_linear.h"
#include "awq/thread_pool.h"
#include "cli/args.h"
#include "cli/commands.h"

extern "C" void openblas_set_num_threads(int);
extern "C" char* openblas_get_corename(void);

namespace awq::cli {
namespace {

using kernels::PackedLinear;
using Clock = std::chrono::steady_clock;

// The last-level cache one core can use: sysfs first (per-CCD L3 on AMD; inside VMs sysconf may
// report the whole host package), then sysconf, then 32 MiB.
size_t llc_bytes() {
  for (const char* idx : {"index3", "index2"}) {
    std::ifstream f(std::string("/sys/devices/system/cpu/cpu0/cache/") + idx + "/size");
    std::string s;
    if (f >> s && !s.empty() && std::isdigit(static_cast<unsigned char>(s[0]))) {
      size_t n = std::stoul(s);
      if (s.back() == 'K') n <<= 10;
      if (s.back() == 'M') n <<= 20;
      return n;
    }
  }
  const long v = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return v > 0 ? size_t(v) : size_t(32) << 20;
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

struct Stats {
  double median = 0, spread = 0;
  int runs = 0;
  double min = 0;  // best run: the least disturbed by other processes
};

// Calls f(rep) until min_time has passed and min_runs ran (or max_runs); warmup calls first.
template <class F>
Stats time_it(F&& f, int warmup, int min_runs, double min_time, int max_runs) {
  for (int i = 0; i < warmup; ++i) f(i);
  std::vector<double> t;
  double total = 0;
  for (int rep = 0; rep < max_runs && (int(t.size()) < min_runs || total < min_time); ++rep) {
    const auto a = Clock::now();
    f(warmup + rep);
    const double s = std::chrono::duration<double>(Clock::now() - a).count();
    t.push_back(s);
    total += s;
  }
  std::sort(t.begin(), t.end());
  auto q = [&](double p) {
    const double i = p * double(t.size() - 1);
    const size_t lo = size_t(i);
    const size_t hi = std::min(lo + 1, t.size() - 1);
    return t[lo] + (t[hi] - t[lo]) * (i - double(lo));
  };
  return {q(0.5), (q(0.75) - q(0.25)) / 2, int(t.size()), t.front()};
}

// Interleaved measurement: every round runs each job once (ours, the baselines, the read stream),
// so all of them sample the same machine conditions (load from other processes drifts). Stops when
// the rounds have taken min_time seconds and every job has its min_runs; a job stops at max_runs.
struct Job {
  std::function<void(int)> f;
  int warmup = 1, min_runs = 5, max_runs = 1 << 30;
  std::vector<double> t;
  Stats stats() const {
    std::vector<double> v = t;
    std::sort(v.begin(), v.end());
    auto q = [&](double p) {
      const double i = p * double(v.size() - 1);
      const size_t lo = size_t(i), hi = std::min(lo + 1, v.size() - 1);
      return v[lo] + (v[hi] - v[lo]) * (i - double(lo));
    };
    return v.empty() ? Stats{} : Stats{q(0.5), (q(0.75) - q(0.25)) / 2, int(v.size()), v.front()};
  }
};

// Runs each job's warm-up calls, then untimed rounds (every job with max_runs > 1, once each) for
// warm_time seconds (clocks ramp up, pages and caches settle: the first row of a run measured
// slow without it), then timed rounds until job 0 has min_time seconds and every job its runs.
void round_robin(std::vector<Job>& jobs, double min_time, double warm_time) {
  for (auto& j : jobs)
    for (int i = 0; i < j.warmup; ++i) j.f(i);
  for (const auto start = Clock::now(); std::chrono::duration<double>(Clock::now() - start).count() < warm_time;)
    for (auto& j : jobs)
      if (j.max_runs > 1) j.f(j.warmup);
  double total = 0;
  for (int rep = 0;; ++rep) {
    const bool done0 = int(jobs[0].t.size()) >= jobs[0].min_runs && total >= min_time;
    bool all = done0;
    for (size_t i = 1; i < jobs.size(); ++i) all = all && int(jobs[i].t.size()) >= std::min(jobs[i].min_runs, jobs[i].max_runs);
    if (all) break;
    for (size_t i = 0; i < jobs.size(); ++i) {
      Job& j = jobs[i];
      if (int(j.t.size()) >= j.max_runs || (done0 && int(j.t.size()) >= j.min_runs)) continue;
      const auto a = Clock::now();
      j.f(j.warmup + rep);
      const double sec = std::chrono::duration<double>(Clock::now() - a).count();
      j.t.push_back(sec);
      total += sec;
    }
  }
}

PackedLinear clone(const PackedLinear& p) {
  PackedLinear c;
  c.name = p.name;
  c.n = p.n, c.k = p.k, c.n_tiles = p.n_tiles, c.group = p.group, c.n_groups = p.n_groups, c.k_pad = p.k_pad;
  c.source_group = p.source_group, c.wide = p.wide;
  c.codes = kernels::AlignedBytes(p.codes.size());
  std::memcpy(c.codes.data(), p.codes.data(), p.codes.size());
  c.params = kernels::AlignedBytes(p.params.size());
  std::memcpy(c.params.data(), p.params.data(), p.params.size());
  c.source_col = p.source_col;
  c.bias = p.bias;
  c.pre_quant_scale = p.pre_quant_scale;
  return c;
}

// One shape's weights in every form, with enough copies for the regime.
struct Weights {
  int64_t n = 0, k = 0;
  std::vector<PackedLinear> packed;
  std::vector<std::vector<float>> f32;
  std::vector<std::vector<uint16_t>> bf16;
};

// Cold: copies totalling at least max(8x LLC, 256 MiB), the read-bandwidth buffer's size. (AMD's L3
// is a victim cache that keeps part of a rotation only twice its size, which would flatter us.)
size_t copies_for(size_t bytes, bool hot, size_t llc) {
  const size_t target = std::max<size_t>(8 * llc, size_t(256) << 20);
  return hot ? 1 : std::max<size_t>(1, (target + bytes - 1) / bytes);
}

Weights make_weights(int64_t n, int64_t k, bool hot, size_t llc) {
  QuantLinear q;
  q.name = "bench";
  q.n = n, q.k = k, q.group_size = 128, q.n_groups = (k + 127) / 128;
  q.scale_dtype = DType::F16;
  std::mt19937 rng(42);
  q.codes.resize(size_t(n * k));
  for (auto& c : q.codes) c = uint8_t(rng() & 15);
  q.scales.resize(size_t(n * q.n_groups));
  q.zeros.resize(q.scales.size());
  for (size_t i = 0; i < q.scales.size(); ++i) {
    q.scales[i] = f16_to_f32(f32_to_f16(0.002f + 0.01f * float(rng() % 1000) / 1000.f));
    q.zeros[i] = int32_t(rng() % 16);
  }
  Weights w;
  w.n = n, w.k = k;
  PackedLinear p = kernels::repack(q);
  const size_t nq = copies_for(p.weight_bytes(), hot, llc);
  for (size_t i = 1; i < nq; ++i) w.packed.push_back(clone(p));
  w.packed.push_back(std::move(p));
  std::vector<float> f(size_t(n * k));
  dequantize_ref(q, DType::F32, reinterpret_cast<uint8_t*>(f.data()));
  std::vector<uint16_t> b(f.size());
  for (size_t i = 0; i < f.size(); ++i) b[i] = f32_to_bf16(f[i]);
  const size_t nb = copies_for(b.size() * 2, hot, llc), nf = copies_for(f.size() * 4, hot, llc);
  for (size_t i = 0; i < nb; ++i) w.bf16.push_back(b);
  for (size_t i = 0; i < nf; ++i) w.f32.push_back(f);
  return w;
}

struct Args {
  std::string kernel = "gemv", path = "auto", dtype = "bf16", target;
  std::vector<std::string> shapes;
  std::vector<int64_t> ms;
  std::vector<int> threads;
  bool hot = false, json = false, no_scalar = false;
  double min_time = 2.0;
};

struct Row {
  nlohmann::json j;
};

class Bench {
 public:
  explicit Bench(const Args& a) : a_(a), llc_(llc_bytes()) {}

  // The read-bandwidth job for this row's threads and regime: a vector-load stream over a buffer
  // of max(8x LLC, 256 MiB) (cold) or of the weights' size (hot). Returns the job and its bytes.
  std::pair<Job, size_t> read_job(int threads, size_t hot_bytes) {
    const size_t bytes = a_.hot ? std::max<size_t>(hot_bytes / 4096 * 4096, 1 << 20) : std::max<size_t>(8 * llc_, 256u << 20);
    auto& buf = read_bufs_[bytes];
    if (!buf) {
      buf = std::make_unique<kernels::AlignedBytes>(bytes);
      for (size_t i = 0; i < bytes; i += 4096) buf->data()[i] = uint8_t(i >> 12);
    }
    ThreadPool* pool = &pool_for(threads);
    const uint8_t* data = buf->data();
    Job j;
    j.f = [this, data, bytes, pool](int) { sink_ = sink_ + kernels::read_stream(data, bytes, pool); };
    return {std::move(j), bytes};
  }

  // Untimed warm-up before a row's rounds: 1 s before the first row of the run, 0.2 s after.
  double warm_time() {
    const double t = rows_.empty() ? 1.0 : 0.2;
    return std::min(t, a_.min_time);
  }

  ThreadPool& pool_for(int threads) {
    auto& p = pools_[threads];
    if (!p) p = std::make_unique<ThreadPool>(threads);
    return *p;
  }

  Weights& weights(int64_t n, int64_t k) {
    auto& w = weights_[{n, k}];
    if (!w) {
      std::fprintf(stderr, "bench: preparing %lldx%lld weights...\n", (long long)n, (long long)k);
      w = std::make_unique<Weights>(make_weights(n, k, a_.hot, llc_));
    }
    return *w;
  }

  void gemm_row(int64_t n, int64_t k, int64_t m, int threads, kernels::Path path) {
    Weights& W = weights(n, k);
    ThreadPool& pool = pool_for(threads);
    std::mt19937 rng(7);
    std::normal_distribution<float> nd;
    std::vector<float> x(size_t(m * k)), y(size_t(m * n));
    for (auto& v : x) v = nd(rng);
    const PackedLinear& p0 = W.packed[0];
    const size_t bytes = p0.weight_bytes() + x.size() * 4 + y.size() * 4;
    const size_t nq = W.packed.size();
    const int warm = int(std::min<size_t>(nq, 4));
    openblas_set_num_threads(threads);
    const size_t nf = W.f32.size(), nb = W.bf16.size();
    auto [rj, rbytes] = read_job(threads, p0.weight_bytes());
    std::vector<Job> jobs(4);
    jobs[0].f = [&](int rep) {
      kernels::gemm(W.packed[size_t(rep) % nq], x.data(), DType::F32, m, y.data(), DType::F32, {path, &pool});
    };
    jobs[0].warmup = warm;
    jobs[1].f = [&](int rep) {
      const float* w = W.f32[size_t(rep) % nf].data();
      if (m == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, int(n), int(k), 1.f, w, int(k), x.data(), 1, 0.f, y.data(), 1);
      else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(k), 1.f, x.data(), int(k), w, int(k),
                    0.f, y.data(), int(n));
    };
    jobs[1].warmup = int(std::min<size_t>(nf, 2));
    jobs[2].f = [&](int rep) {
      kernels::dense_bf16_gemm(W.bf16[size_t(rep) % nb].data(), n, k, x.data(), m, y.data(), &pool);
    };
    jobs[2].warmup = m >= 64 ? 0 : int(std::min<size_t>(nb, 2));
    if (m >= 64) jobs[2].min_runs = jobs[2].max_runs = 1;
    jobs[3] = std::move(rj);
    // The int16 path where gemm takes the AMX-INT8 kernel: its VNNI/maddubs kernels as a baseline.
    const bool amx = path == kernels::Path::kInt16 && m >= kernels::kAmxMinRows && kernels::amx_available();
    if (amx) {
      jobs.emplace_back();
      jobs[4].f = [&](int rep) {
        kernels::force_amx_unavailable(true);
        kernels::gemm(W.packed[size_t(rep) % nq], x.data(), DType::F32, m, y.data(), DType::F32, {path, &pool});
        kernels::force_amx_unavailable(false);
      };
      jobs[4].warmup = warm;
    }
    round_robin(jobs, a_.min_time, warm_time());
    const Stats ours = jobs[0].stats(), blas = jobs[1].stats(), dense = jobs[2].stats();
    const double rbw = double(rbytes) / jobs[3].stats().median / 1e9;
    // The scalar reference is far slower; it runs on its own afterwards (once at M >= 64).
    Stats scalar;
    if (!a_.no_scalar) {
      scalar = time_it(
          [&](int rep) {
            kernels::gemm_ref(W.packed[size_t(rep) % nq], x.data(), DType::F32, m, y.data(), DType::F32, path, &pool);
          },
          0, m >= 64 ? 1 : 3, m >= 64 ? 0.0 : std::min(a_.min_time, 0.5), m >= 64 ? 1 : 1000);
    }
    nlohmann::json j;
    common_fields(j, "awq", kernels::path_name(path), n, k, m, threads, ours, bytes, rbw);
    j["gflops"] = 2.0 * double(m) * double(n) * double(k) / ours.median / 1e9;
    // Best-of-runs figures: on a shared machine the minimum is the least disturbed sample of each job.
    const double rbw_best = double(rbytes) / jobs[3].stats().min / 1e9;
    j["min_s"] = ours.min;
    j["read_gbps_best"] = rbw_best;
    j["bw_fraction_best"] = double(bytes) / ours.min / 1e9 / rbw_best;
    j["vs_best"] = {{"openblas_f32", blas.min / ours.min}, {"dense_bf16", dense.min / ours.min}};
    j["bits_per_weight"] = p0.bits_per_weight();
    j["copies"] = nq;
    j["vs"] = {{"openblas_f32", blas.median / ours.median},
               {"dense_bf16", dense.median / ours.median},
               {"scalar", a_.no_scalar ? nlohmann::json(nullptr) : nlohmann::json(scalar.median / ours.median)}};
    j["baselines"] = {
        {"openblas_f32", {{"median_s", blas.median}, {"runs", blas.runs}, {"bytes", W.f32[0].size() * 4}}},
        {"dense_bf16", {{"median_s", dense.median}, {"runs", dense.runs}, {"bytes", W.bf16[0].size() * 2}}},
        {"scalar", {{"median_s", scalar.median}, {"runs", scalar.runs}}}};
    if (amx) {
      const Stats vnni = jobs[4].stats();
      j["int16_kernel"] = "amx";
      j["vs"]["int16_vnni"] = vnni.median / ours.median;
      j["vs_best"]["int16_vnni"] = vnni.min / ours.min;
      j["baselines"]["int16_vnni"] = {{"median_s", vnni.median}, {"runs", vnni.runs}};
    }
    emit(j);
  }

  // The dense GEMM on bf16-rounded inputs (quantize's calibration products) against the f32 tall
  // GEMM it replaces, same shapes, interleaved rounds: y[m][n] = x[m][k]·W[n][k]ᵀ, W packed inside
  // each call as quantize's linear() does. Hot (one W reused): the calibration GEMMs are compute-bound.
  void dense_row(int64_t n, int64_t k, int64_t m, int threads) {
    ThreadPool& pool = pool_for(threads);
    std::mt19937 rng(7);
    std::normal_distribution<float> nd;
    std::vector<float> x(size_t(m * k)), w(size_t(n * k)), y(size_t(m * n));
    for (auto& v : x) v = nd(rng);
    for (auto& v : w) v = 0.02f * nd(rng);
    const size_t bytes = (x.size() + w.size() + y.size()) * 4;
    auto [rj, rbytes] = read_job(threads, bytes);
    std::vector<Job> jobs(3);
    jobs[0].f = [&](int) { kernels::bf16_gemm(x.data(), m, w.data(), n, k, y.data(), &pool); };
    jobs[1].f = [&](int) { kernels::dense_f32_gemm_tall(w.data(), n, k, x.data(), m, y.data(), &pool); };
    jobs[1].min_runs = 3;
    jobs[2] = std::move(rj);
    round_robin(jobs, a_.min_time, warm_time());
    const Stats ours = jobs[0].stats(), f32 = jobs[1].stats();
    nlohmann::json j;
    common_fields(j, "dense_bf16_gemm", kernels::amx_bf16_available() ? "amx-bf16" : "bf16 (f32 fma)", n, k, m, threads, ours, bytes,
                  double(rbytes) / jobs[2].stats().median / 1e9);
    j["regime"] = "hot";
    j["gflops"] = 2.0 * double(m) * double(n) * double(k) / ours.median / 1e9;
    j["min_s"] = ours.min;
    j["vs"] = {{"f32_tall", f32.median / ours.median}};
    j["vs_best"] = {{"f32_tall", f32.min / ours.min}};
    j["baselines"] = {{"f32_tall",
                       {{"median_s", f32.median}, {"runs", f32.runs}, {"gflops", 2.0 * double(m) * double(n) * double(k) / f32.median / 1e9}}}};
    emit(j);
  }

  // The causal attention of quantize's calibration forwards on bf16-rounded inputs
  // (causal_attention_bf16: AMX-BF16 tiles where they run) against the f32 kernel it replaces
  // (causal_attention), interleaved rounds. One run = one sequence of len tokens, every KV head one
  // task on the pool (as quantize's attend()). FLOPs counted: 4·heads·hd·len(len+1)/2 (causal Q·Kᵀ
  // and P·V, no window).
  void attention_row(int64_t heads, int64_t kv_heads, int64_t hd, int64_t len, int threads) {
    ThreadPool& pool = pool_for(threads);
    std::mt19937 rng(9);
    std::normal_distribution<float> nd;
    const int64_t qd = heads * hd, kd = kv_heads * hd, group = heads / kv_heads;
    std::vector<float> q(size_t(len * qd)), k(size_t(len * kd)), v(size_t(len * kd)), o(size_t(len * qd));
    for (auto* x : {&q, &k, &v})
      for (auto& e : *x) e = nd(rng);
    const float scale = 1.0f / std::sqrt(float(hd));
    std::vector<std::vector<float>> sb(size_t(pool.size())), sf(size_t(pool.size()));
    for (auto& x : sb) x.resize(kernels::causal_attention_bf16_scratch(len, group, hd));
    for (auto& x : sf) x.resize(kernels::causal_attention_scratch(len, hd));
    const auto run = [&](bool bf16) {
      pool.run(kv_heads, [&](int64_t h, int th) {
        (bf16 ? kernels::causal_attention_bf16 : kernels::causal_attention)(
            q.data() + h * group * hd, qd, group, hd, k.data() + h * hd, v.data() + h * hd, kd, len, 0, scale, o.data() + h * group * hd, qd,
            (bf16 ? sb : sf)[size_t(th)].data());
      });
    };
    const size_t bytes = (q.size() + k.size() + v.size() + o.size()) * 4;
    auto [rj, rbytes] = read_job(threads, bytes);
    std::vector<Job> jobs(3);
    jobs[0].f = [&](int) { run(true); };
    jobs[1].f = [&](int) { run(false); };
    jobs[2] = std::move(rj);
    round_robin(jobs, a_.min_time, warm_time());
    const Stats ours = jobs[0].stats(), f32 = jobs[1].stats();
    const double flops = 4.0 * double(heads) * double(hd) * double(len) * double(len + 1) / 2;
    nlohmann::json j;
    common_fields(j, "causal_attention_bf16", kernels::amx_bf16_available() ? "amx-bf16" : "bf16 (f32 fma)", heads, hd, len, threads, ours,
                  bytes, double(rbytes) / jobs[2].stats().median / 1e9);
    j["shape"] = std::to_string(heads) + "h/" + std::to_string(kv_heads) + "kv x hd" + std::to_string(hd);
    j["regime"] = "hot";
    j["gflops"] = flops / ours.median / 1e9;
    j["min_s"] = ours.min;
    j["vs"] = {{"f32_attention", f32.median / ours.median}};
    j["vs_best"] = {{"f32_attention", f32.min / ours.min}};
    j["baselines"] = {{"f32_attention", {{"median_s", f32.median}, {"runs", f32.runs}, {"gflops", flops / f32.median / 1e9}}}};
    emit(j);
  }

  void dequant_row(int64_t n, int64_t k, int threads, DType out) {
    Weights& W = weights(n, k);
    ThreadPool& pool = pool_for(threads);
    const size_t out_bytes = size_t(n * k) * dtype_size(out);
    kernels::AlignedBytes dst(out_bytes);
    const size_t nq = W.packed.size();
    // copy baseline: memcpy of the output's bytes, same threads, sources rotating like the weights.
    const size_t nsrc = copies_for(out_bytes, a_.hot, llc_);
    std::vector<kernels::AlignedBytes> src;
    for (size_t i = 0; i < nsrc; ++i) {
      src.emplace_back(out_bytes);
      std::memset(src.back().data(), int(i + 1), out_bytes);
    }
    const PackedLinear& p0 = W.packed[0];
    auto [rj, rbytes] = read_job(threads, p0.weight_bytes());
    std::vector<Job> jobs(3);
    jobs[0].f = [&](int rep) { kernels::dequantize(W.packed[size_t(rep) % nq], out, 0, n, dst.data(), &pool); };
    jobs[0].warmup = int(std::min<size_t>(nq, 4));
    jobs[1].f = [&](int rep) {
      const uint8_t* s = src[size_t(rep) % nsrc].data();
      pool.run(threads, [&](int64_t t, int) {
        const size_t a = out_bytes * size_t(t) / size_t(threads), b = out_bytes * size_t(t + 1) / size_t(threads);
        std::memcpy(dst.data() + a, s + a, b - a);
      });
    };
    jobs[1].warmup = int(std::min<size_t>(nsrc, 2));
    jobs[2] = std::move(rj);
    round_robin(jobs, a_.min_time, warm_time());
    const Stats ours = jobs[0].stats(), copy = jobs[1].stats();
    const size_t bytes = p0.weight_bytes() + out_bytes;
    const double rbw = double(rbytes) / jobs[2].stats().median / 1e9;
    nlohmann::json j;
    common_fields(j, "awq_dequant", out == DType::BF16 ? "bf16" : out == DType::F16 ? "f16" : "f32", n, k, 0, threads,
                  ours, bytes, rbw);
    j["copy_gbps"] = 2.0 * double(out_bytes) / copy.median / 1e9;
    // The dequant goal's measure: our GB/s (packed weights read + output written) over the copy's
    // GB/s (output bytes read + written), both at their medians.
    j["copy_bw_fraction"] = j["gbps"].get<double>() / j["copy_gbps"].get<double>();
    j["min_s"] = ours.min;
    j["copy_gbps_best"] = 2.0 * double(out_bytes) / copy.min / 1e9;
    j["read_gbps_best"] = double(rbytes) / jobs[2].stats().min / 1e9;
    j["vs_best"] = {{"copy", copy.min / ours.min}};
    j["copies"] = nq;
    j["vs"] = {{"copy", copy.median / ours.median}};
    j["baselines"] = {{"copy", {{"median_s", copy.median}, {"runs", copy.runs}, {"bytes", 2 * out_bytes}}}};
    emit(j);
  }

  // The keys every row has (the JSON contract), from our kernel's stats and bytes per run.
  void common_fields(nlohmann::json& j, const char* kernel, const char* path, int64_t n, int64_t k, int64_t m,
                     int threads, const Stats& ours, size_t bytes, double read_gbps) const {
    j["kernel"] = kernel;
    j["path"] = path;
    j["target"] = kernels::active_target();
    j["shape"] = std::to_string(n) + "x" + std::to_string(k);
    j["m"] = m;
    j["threads"] = threads;
    j["regime"] = a_.hot ? "hot" : "cold";
    j["median_s"] = ours.median;
    j["spread_s"] = ours.spread;
    j["runs"] = ours.runs;
    j["bytes"] = bytes;
    j["gbps"] = double(bytes) / ours.median / 1e9;
    j["read_gbps"] = read_gbps;
    j["bw_fraction"] = double(bytes) / ours.median / 1e9 / read_gbps;
  }

  void emit(const nlohmann::json& j) {
    rows_.push_back(j);
    if (a_.json) return;
    if (!header_) {
      header_ = true;
      std::printf("| kernel | path | target | shape NxK | m | thr | regime | time ms (median ± IQR/2, min) | GB/s | %% of read BW (GB/s) | GFLOPS | baselines (their time / ours) |\n");
      std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    }
    std::string vs;
    for (auto& [name, v] : j["vs"].items()) {
      if (v.is_null()) continue;
      char b[96];
      int runs = j["baselines"][name]["runs"];
      std::snprintf(b, sizeof b, "%s%s %.2f×%s", vs.empty() ? "" : ", ", name.c_str(), v.get<double>(),
                    runs < 5 ? (" (" + std::to_string(runs) + " run" + (runs == 1 ? ")" : "s)")).c_str() : "");
      vs += b;
    }
    if (j.contains("copy_bw_fraction")) {
      char b[64];
      std::snprintf(b, sizeof b, " (our GB/s = %.0f%% of copy GB/s)", 100.0 * j["copy_bw_fraction"].get<double>());
      vs += b;
    }
    const std::string gf = j.contains("gflops") ? std::to_string(int(std::lround(j["gflops"].get<double>()))) : "-";
    std::printf("| %s | %s | %s | %s | %lld | %d | %s | %.3f ± %.3f (min %.3f) | %.1f | %.0f%% (%.1f) | %s | %s |\n",
                j["kernel"].get<std::string>().c_str(),
                (j["path"].get<std::string>() + (j.contains("int16_kernel") ? " (amx)" : "")).c_str(),
                j["target"].get<std::string>().c_str(), j["shape"].get<std::string>().c_str(), (long long)j["m"].get<int64_t>(),
                j["threads"].get<int>(), j["regime"].get<std::string>().c_str(), j["median_s"].get<double>() * 1e3,
                j["spread_s"].get<double>() * 1e3, j["min_s"].get<double>() * 1e3, j["gbps"].get<double>(), 100.0 * j["bw_fraction"].get<double>(),
                j["read_gbps"].get<double>(), gf.c_str(), vs.c_str());
    std::fflush(stdout);
  }

  void print_header() const {
    if (a_.json) return;
    std::printf("awq bench: %s | %u hw threads | LLC %zu MiB | kernels target %s | OpenBLAS core %s | regime %s\n",
                cpu_model().c_str(), std::thread::hardware_concurrency(), llc_ >> 20, kernels::active_target().c_str(),
                openblas_get_corename(),
                a_.hot ? "hot (one copy of the weights, reused)" : "cold (weights rotate through copies >= max(8x LLC, 256 MiB))");
  }

  const std::vector<nlohmann::json>& rows() const { return rows_; }

 private:
  const Args& a_;
  size_t llc_;
  std::map<size_t, std::unique_ptr<kernels::AlignedBytes>> read_bufs_;
  volatile uint64_t sink_ = 0;
  std::map<int, std::unique_ptr<ThreadPool>> pools_;
  std::map<std::pair<int64_t, int64_t>, std::unique_ptr<Weights>> weights_;
  std::vector<nlohmann::json> rows_;
  bool header_ = false;
};

std::pair<int64_t, int64_t> parse_shape(const std::string& s) {
  const auto x = s.find_first_of("xX");
  if (x == std::string::npos) throw UsageError("--shape must be NxK, e.g. 4096x14336, not \"" + s + "\"");
  try {
    const int64_t n = std::stoll(s.substr(0, x)), k = std::stoll(s.substr(x + 1));
    if (n <= 0 || k <= 0 || n > (1 << 20) || k > (1 << 20)) throw Error("");
    return {n, k};
  } catch (...) {
    throw UsageError("--shape must be NxK with positive sizes, not \"" + s + "\"");
  }
}

// Makes our kernels use the named SIMD target (for measuring a lesser target on a better CPU).
void force_target_by_name(const std::string& name) {
  std::string known;
  for (const auto& t : kernels::compiled_targets()) {
    if (t.name == name) {
      if (!t.runnable) throw Error("--target " + name + " cannot run here: " + t.why_not);
      kernels::force_target(t.bits);
      return;
    }
    known += (known.empty() ? "" : ", ") + t.name + (t.runnable ? "" : " (not runnable here)");
  }
  throw UsageError("--target " + name + " is not a compiled target; compiled: " + known);
}

}  // namespace

Action add_bench(CLI::App& app) {
  auto* sub = app.add_subcommand("bench", "Time the 4-bit kernels against OpenBLAS f32, dense bf16 and the scalar reference");
  auto a = std::make_shared<Args>();
  sub->add_option("KERNEL", a->kernel,
                  "dequant | gemv | gemm (default gemv) | dense (the bf16 GEMM of quantize against the f32 tall GEMM; default "
                  "shapes 4096x4096, 11008x4096, 4096x11008, m 512,4096) | attention (quantize's bf16 causal attention against the f32 "
                  "one: the bundled model's 4 heads/2 KV heads x 64 and a 7B's 32/32 x 128; --m sets the sequence length, default 512)")
      ->check(CLI::IsMember({"dequant", "gemv", "gemm", "dense", "attention"}));
  sub->add_option("--shape", a->shapes, "NxK (out x in), comma-separated list (default: 6 Llama shapes)")->delimiter(',');
  sub->add_option("--m", a->ms, "activation rows, comma-separated (gemm default 2,4,8,16,32,64,128,512)")->delimiter(',');
  sub->add_option("--threads", a->threads, "thread counts, comma-separated (default: all hardware threads)")->delimiter(',');
  sub->add_flag("--hot", a->hot, "one copy of the weights reused every run (cache-hot, like ggml test-backend-ops)");
  sub->add_flag("--json", a->json, "print a JSON list (one object per measured kernel and shape) instead of the table");
  sub->add_option("--path", a->path, "auto | f32 | int8 | int16 | bf16 (auto: int8, the fastest on every machine measured, bf16 included; bf16 needs AVX512_BF16)")
      ->check(CLI::IsMember({"auto", "f32", "int8", "int16", "bf16"}));
  sub->add_option("--dtype", a->dtype, "dequant output: bf16 | f16 | f32 (default bf16)")->check(float_dtype_arg());
  sub->add_option("--min-time", a->min_time, "seconds of interleaved rounds per row (default 2)")->check(finite_range_arg(0, 3600));
  sub->add_flag("--no-scalar", a->no_scalar, "skip the scalar-reference baseline");
  sub->add_option("--target", a->target,
                  "SIMD target for our kernels (AVX3_DL, AVX3, AVX2, SSE4, SCALAR; default: the best this CPU runs)");
  Action run_model = add_bench_run(*sub);
  return [a, run_model]() {
    if (const int rc = run_model(); rc >= 0) return rc;  // `awq bench run`
    if (!a->target.empty()) force_target_by_name(a->target);
    std::vector<std::pair<int64_t, int64_t>> shapes;
    if (a->shapes.empty() && a->kernel == "dense") {
      shapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    } else if (a->shapes.empty()) {
      shapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {14336, 4096}, {4096, 14336}, {12288, 4096}};
    } else {
      for (const auto& s : a->shapes) shapes.push_back(parse_shape(s));
    }
    std::vector<int64_t> ms = a->ms;
    if (a->kernel == "gemv") ms = {1};
    if (ms.empty() && a->kernel == "attention") ms = {512};
    if (ms.empty()) ms = a->kernel == "dense" ? std::vector<int64_t>{512, 4096} : std::vector<int64_t>{2, 4, 8, 16, 32, 64, 128, 512};
    for (int64_t m : ms)
      if (m < 1 || m > 65536) throw UsageError("--m must be in [1, 65536]");
    std::vector<int> threads = a->threads;
    if (threads.empty()) threads = {int(std::max(1u, std::thread::hardware_concurrency()))};
    for (int t : threads)
      if (t < 1 || t > 1024) throw UsageError("--threads must be in [1, 1024]");
    kernels::Path path = kernels::Path::kInt8;  // auto
    if (a->path != "auto") kernels::parse_path(a->path, &path);  // CLI11 checked the name
    std::string why;
    if (!kernels::path_available(path, &why)) throw Error(std::string("--path ") + a->path + ": " + why);
    Bench b(*a);
    b.print_header();
    if (a->kernel == "attention") {
      for (int t : threads)
        for (int64_t m : ms) {
          b.attention_row(4, 2, 64, m, t);     // the bundled model (kjv-llama)
          b.attention_row(32, 32, 128, m, t);  // a Llama-2-7B
        }
      if (a->json) std::printf("%s\n", json_text(nlohmann::json(b.rows()), 1).c_str());
      return 0;
    }
    for (auto [n, k] : shapes)
      for (int t : threads) {
        if (a->kernel == "dequant") {
          b.dequant_row(n, k, t, *parse_float_dtype_cli(a->dtype));
        } else if (a->kernel == "dense") {
          for (int64_t m : ms) b.dense_row(n, k, m, t);
        } else {
          for (int64_t m : ms) b.gemm_row(n, k, m, t, path);
        }
      }
    if (a->json) std::printf("%s\n", json_text(nlohmann::json(b.rows()), 1).c_str());
    return 0;
  };
}

}  // namespace awq::cli
