// AWQ scale search and clip search for one layer (see awq_layer.h and docs/quantize.md).
// Every grid trial quantizes from the const, unmodified weights into a separate buffer: nothing a
// trial does can leak into the next one (AutoAWQ/llm-awq's CPU aliasing bug cannot happen here).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <optional>

#include <sys/resource.h>

#include "awq/error.h"
#include "awq/kernels.h"
#include "awq/model_ops.h"
#include "awq/thread_pool.h"
#include "quant/awq_forward.h"
#include "quant/awq_layer.h"
#include "quant/trial_gemm.h"

namespace awq::quant_detail {

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

std::vector<float> scale_candidate(const std::vector<float>& x_mean, const std::vector<float>& w_mean, ScaleFormula formula, double alpha) {
  std::vector<float> s(x_mean.size());
  for (size_t c = 0; c < s.size(); ++c) {
    double v = std::pow(double(x_mean[c]), alpha);
    if (formula == ScaleFormula::kDuo) v /= std::pow(double(w_mean[c]), 1 - alpha) + 1e-4;
    s[c] = float(std::max(v, 1e-4));
  }
  const auto [mn, mx] = std::minmax_element(s.begin(), s.end());
  const float norm = float(std::sqrt(double(*mn) * double(*mx)));
  for (float& v : s) v = std::isfinite(v / norm) ? v / norm : 1.0f;
  return s;
}

void fake_quant_scaled(const float* w, int64_t n, int64_t k, const float* s, int64_t group_size, const QParams& q, float* out,
                       ThreadPool& pool) {
  pool.run(n, [&](int64_t r, int) {
    std::vector<float> buf(static_cast<size_t>(group_size));
    for (int64_t g0 = 0; g0 < k; g0 += group_size) {
      for (int64_t c = 0; c < group_size; ++c) buf[size_t(c)] = w[r * k + g0 + c] * (s ? s[g0 + c] : 1.0f);
      fake_quant_group(buf.data(), group_size, q, 1, 1, out + r * k + g0);
      if (s)
        for (int64_t c = 0; c < group_size; ++c) out[r * k + g0 + c] /= s[g0 + c];
    }
  });
}

namespace {
// Reusable buffers of gram_sum (ΔW, ΔW·G, the rows' sums): repeated calls (every candidate) reuse
// their pages. Every element is written before it is read.
struct GramScratch {
  std::vector<float> d, y;
  std::vector<double> rows;
};
void grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}
// gram_sum on the bf16 GEMM with G packed (g), n·k at a time: rows of ΔW and of ΔW·G split over the
// pool, one double sum per row, the rows' sums added in row order (the same for any thread count).
double gram_sum_bf16(const float* wq, const float* w, int64_t n, int64_t k, const kernels::Bf16Matrix& g, ThreadPool& pool,
                     GramScratch& sc) {
  grow(sc.d, size_t(n * k));
  grow(sc.y, size_t(n * k));
  sc.rows.resize(size_t(n));
  float *d = sc.d.data(), *y = sc.y.data();
  pool.run(n, [&](int64_t r, int) {
    for (int64_t c = r * k; c < (r + 1) * k; ++c) d[c] = wq[c] - w[c];
  });
  kernels::bf16_gemm(d, n, g, y, &pool);  // y = D·G (G symmetric)
  pool.run(n, [&](int64_t r, int) {
    double acc = 0;
    for (int64_t c = r * k; c < (r + 1) * k; ++c) acc += double(d[c]) * double(y[c]);
    sc.rows[size_t(r)] = acc;
  });
  double acc = 0;
  for (int64_t r = 0; r < n; ++r) acc += sc.rows[size_t(r)];
  return acc;
}
double gram_sum(const float* wq, const float* w, int64_t n, int64_t k, const std::vector<float>& gram, ThreadPool& pool, GramScratch& sc) {
  if (compute_mode() == Compute::kBf16) return gram_sum_bf16(wq, w, n, k, kernels::bf16_pack(gram.data(), k, k, &pool), pool, sc);
  grow(sc.d, size_t(n * k));
  grow(sc.y, size_t(n * k));
  float *d = sc.d.data(), *y = sc.y.data();
  const size_t nk = size_t(n * k);
  for (size_t i = 0; i < nk; ++i) d[i] = wq[i] - w[i];
  kernels::dense_f32_gemm_tall(gram.data(), k, k, d, n, y, &pool);  // y = D·G (G symmetric)
  double acc = 0;
  for (size_t i = 0; i < nk; ++i) acc += double(d[i]) * double(y[i]);
  return acc;
}
}  // namespace

double gram_sum(const float* wq, const float* w, int64_t n, int64_t k, const std::vector<float>& gram, ThreadPool& pool) {
  GramScratch sc;
  return gram_sum(wq, w, n, k, gram, pool, sc);
}

double gram_loss(const float* wq, const float* w, int64_t n, int64_t k, const std::vector<float>& gram, int64_t tokens, ThreadPool& pool) {
  return gram_sum(wq, w, n, k, gram, pool) / double(tokens) / double(n);
}

std::vector<int64_t> spread(int64_t n, int64_t m) {
  m = std::clamp<int64_t>(m, 1, n);
  std::vector<int64_t> ids(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) ids[size_t(i)] = i * n / m;
  return ids;
}

std::vector<float> gather_rows(const float* x, int64_t k, const std::vector<int64_t>& rows) {
  std::vector<float> out(rows.size() * size_t(k));
  for (size_t i = 0; i < rows.size(); ++i) std::copy(x + rows[i] * k, x + (rows[i] + 1) * k, out.begin() + std::ptrdiff_t(i * size_t(k)));
  return out;
}

double mse(const std::vector<float>& a, const std::vector<float>& b, ThreadPool* pool) {
  MseSum sum;
  sum.add(a.data(), b.data(), a.size(), pool);
  return sum.value();
}

std::vector<float> x_mean(const std::vector<float>& x, int64_t T, int64_t k) {
  std::vector<double> acc(static_cast<size_t>(k));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < k; ++c) acc[size_t(c)] += std::fabs(double(x[size_t(t * k + c)]));
  std::vector<float> m(static_cast<size_t>(k));
  for (int64_t c = 0; c < k; ++c) m[size_t(c)] = float(acc[size_t(c)] / double(T));
  return m;
}

// Mean over the rows of the group's linears of |w| / (max |w| of its quantization group + 1e-6).
std::vector<float> w_mean(const LayerTensors& L, const std::vector<int>& lins, int64_t G) {
  const int64_t k = L.k[size_t(lins[0])];
  std::vector<double> acc(static_cast<size_t>(k));
  int64_t rows = 0;
  for (int i : lins) {
    const auto& w = L.w[size_t(i)];
    for (int64_t r = 0; r < L.n[size_t(i)]; ++r, ++rows)
      for (int64_t g0 = 0; g0 < k; g0 += G) {
        float mx = 0;
        for (int64_t c = 0; c < G; ++c) mx = std::max(mx, std::fabs(w[size_t(r * k + g0 + c)]));
        for (int64_t c = 0; c < G; ++c) acc[size_t(g0 + c)] += std::fabs(w[size_t(r * k + g0 + c)]) / (double(mx) + 1e-6);
      }
  }
  std::vector<float> m(static_cast<size_t>(k));
  for (int64_t c = 0; c < k; ++c) m[size_t(c)] = float(acc[size_t(c)] / double(rows));
  return m;
}

namespace {

// XᵀX of x [T][k]. Token blocks are taken in order; each block's product is computed in f32 on
// the kernels (rows of G split over the pool, upper triangle only) and added into a double
// accumulator, so the result is the same for any thread count.
// With Compute::kBf16: kernels::bf16_gram (bf16-rounded tokens, f32 sums; no double accumulator).
std::vector<float> gram(const std::vector<float>& x, int64_t T, int64_t k, ThreadPool& pool) {
  if (compute_mode() == Compute::kBf16) {
    std::vector<float> g(static_cast<size_t>(k * k));
    kernels::bf16_gram(x.data(), T, k, g.data(), &pool);
    return g;
  }
  constexpr int64_t kTok = 256, kRowsPerTask = 32;
  std::vector<double> acc(static_cast<size_t>(k * k));
  std::vector<float> xt(static_cast<size_t>(k * kTok));
  std::vector<std::vector<float>> part(size_t(pool.size()), std::vector<float>(static_cast<size_t>(k * kRowsPerTask)));
  std::vector<std::unique_ptr<ThreadPool>> serial;
  for (int i = 0; i < pool.size(); ++i) serial.push_back(std::make_unique<ThreadPool>(1));
  for (int64_t t0 = 0; t0 < T; t0 += kTok) {
    const int64_t rows = std::min(kTok, T - t0);
    pool.run(k, [&](int64_t c, int) {
      for (int64_t t = 0; t < rows; ++t) xt[size_t(c * rows + t)] = x[size_t((t0 + t) * k + c)];
    });
    pool.run((k + kRowsPerTask - 1) / kRowsPerTask, [&](int64_t task, int th) {
      const int64_t a0 = task * kRowsPerTask, na = std::min(kRowsPerTask, k - a0);
      float* y = part[size_t(th)].data();  // y[b − a0][j] = Σ_t x[t][a0 + j]·x[t][b], b >= a0
      kernels::dense_f32_gemm(xt.data() + a0 * rows, na, rows, xt.data() + a0 * rows, k - a0, y, serial[size_t(th)].get());
      for (int64_t j = 0; j < na; ++j)
        for (int64_t b = a0; b < k; ++b) acc[size_t((a0 + j) * k + b)] += double(y[size_t((b - a0) * na + j)]);
    });
  }
  std::vector<float> g(static_cast<size_t>(k * k));
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = a; b < k; ++b) g[size_t(a * k + b)] = g[size_t(b * k + a)] = float(acc[size_t(a * k + b)]);
  return g;
}

struct Candidate {
  std::string kind;
  double alpha = 0;
  std::vector<float> s;  // empty: identity
};

std::vector<Candidate> candidates(const std::vector<float>& xm, const std::vector<float>& wm, const AwqParams& p) {
  std::vector<Candidate> c;
  if (p.identity) c.push_back({"identity", 0, {}});
  for (int i = 0; i <= p.grid; ++i) {
    const double a = double(i) / p.grid;
    if (p.formula != ScaleFormula::kXOnly) c.push_back({"duo", a, scale_candidate(xm, wm, ScaleFormula::kDuo, a)});
    if (p.formula != ScaleFormula::kDuo && i > 0) c.push_back({"x", a, scale_candidate(xm, wm, ScaleFormula::kXOnly, a)});
  }
  return c;
}

// The fast search's proxy of a group: Σ_i ‖ΔW_i·X‖² through G = XᵀX (the group's shared input),
// over at most `rows` evenly spaced rows of each linear, scaled up to all rows; divided by tokens
// and by the group's output elements. With every row and one linear it equals gram_loss.
class Proxy {
 public:
  Proxy(const LayerTensors& L, const std::vector<int>& lins, const std::vector<float>& G, int64_t rows, int64_t tokens)
      : G_(&G), tokens_(tokens) {
    for (int i : lins) {
      Part part;
      part.n = L.n[size_t(i)];
      part.k = L.k[size_t(i)];
      const int64_t m = std::min(rows, part.n);
      exact_ = exact_ && m == part.n;
      if (m < part.n) part.sub = gather_rows(L.w[size_t(i)].data(), part.k, spread(part.n, m));
      part.w = m < part.n ? part.sub.data() : L.w[size_t(i)].data();
      part.m = m;
      outputs_ += double(part.n);
      parts_.push_back(std::move(part));
    }
    exact_ = exact_ && parts_.size() == 1;
  }
  // True when the proxy is the Gram-form loss itself (one linear, every row).
  bool exact() const { return exact_; }
  double operator()(const float* s, const AwqParams& p, ThreadPool& pool) {
    double acc = 0;
    for (Part& part : parts_) {
      trial_.resize(size_t(part.m * part.k));
      fake_quant_scaled(part.w, part.m, part.k, s, p.group_size, p.q, trial_.data(), pool);
      double sum = 0;
      if (compute_mode() == Compute::kBf16) {  // G packed once for all candidates
        if (!packed_) packed_ = kernels::bf16_pack(G_->data(), part.k, part.k, &pool);
        sum = gram_sum_bf16(trial_.data(), part.w, part.m, part.k, *packed_, pool, scratch_);
      } else {
        sum = gram_sum(trial_.data(), part.w, part.m, part.k, *G_, pool, scratch_);
      }
      acc += sum * (double(part.n) / double(part.m));
    }
    return acc / double(tokens_) / outputs_;
  }

 private:
  struct Part {
    int64_t n = 0, k = 0, m = 0;
    std::vector<float> sub;  // the sampled rows (empty: all rows)
    const float* w = nullptr;
  };
  const std::vector<float>* G_;
  int64_t tokens_;
  std::vector<Part> parts_;
  std::vector<float> trial_;
  GramScratch scratch_;
  std::optional<kernels::Bf16Matrix> packed_;  // G for the bf16 GEMM (Compute::kBf16)
  double outputs_ = 0;
  bool exact_ = true;
};

// Which candidates get the faithful loss in the fast search: the `refine` lowest proxies (ties:
// candidate order; NaN last) and s ≡ 1.
std::vector<bool> refined(const std::vector<Candidate>& cands, const std::vector<double>& proxy, int refine) {
  std::vector<size_t> order(cands.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  const auto key = [&](size_t i) { return std::isnan(proxy[i]) ? std::numeric_limits<double>::infinity() : proxy[i]; };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) < key(b); });
  std::vector<bool> pick(cands.size(), false);
  for (size_t j = 0; j < order.size() && j < size_t(std::max(refine, 0)); ++j) pick[order[j]] = true;
  for (size_t i = 0; i < cands.size(); ++i)
    if (cands[i].s.empty()) pick[i] = true;
  return pick;
}

// Grid search: loss(trial weights) for each candidate (each one's faithful loss, or in the fast
// search the proxy first and the faithful loss of those refined()); trial weights are Q(W·s)/s of
// the group's linears computed from the const originals into `trial`. `G`: XᵀX of the group's
// input (needed by the fast search only, unless `screen` is given: then the fast search ranks the
// candidates by screen(trial weights, s), the faithful loss on a few calibration blocks, instead
// of the Gram proxy). The first minimum of the evaluated losses wins. need_trial false: the trial
// weights are not made (the losses get empty vectors and work from s alone).
using ScreenFn = std::function<double(const std::vector<std::vector<float>>&, const std::vector<float>&)>;
template <class LossFn>
GroupLog search(const std::string& name, const LayerTensors& L, const std::vector<int>& lins, const std::vector<float>& xm,
                const std::vector<float>* G, int64_t tokens, int refine, const AwqParams& p, ThreadPool& pool, const LossFn& loss,
                std::vector<float>& best_s, const ScreenFn* screen = nullptr, bool need_trial = true) {
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = process_cpu_seconds();
  const std::vector<float> wm = w_mean(L, lins, p.group_size);
  GroupLog log;
  log.group = name;
  log.loss_best = std::numeric_limits<double>::infinity();
  std::vector<std::vector<float>> trial(lins.size());
  const auto make_trial = [&](const Candidate& c) {
    if (!need_trial) return;  // the loss packs its own trial from s (int16 q/k/v trials)
    for (size_t j = 0; j < lins.size(); ++j) {
      const int i = lins[j];
      trial[j].resize(L.w[size_t(i)].size());
      fake_quant_scaled(L.w[size_t(i)].data(), L.n[size_t(i)], L.k[size_t(i)], c.s.empty() ? nullptr : c.s.data(), p.group_size, p.q,
                        trial[j].data(), pool);
    }
  };
  const auto run = [&](const Candidate& c) {
    make_trial(c);
    ++log.evaluated;
    return loss(trial, c.s);
  };
  const std::vector<Candidate> cands = candidates(xm, wm, p);
  std::vector<double> proxy(cands.size(), std::numeric_limits<double>::quiet_NaN());
  std::vector<bool> faithful(cands.size(), true);
  bool proxy_is_loss = false;
  std::optional<Proxy> px;
  if (p.mode == SearchMode::kFast && screen) {
    for (size_t i = 0; i < cands.size(); ++i) {
      make_trial(cands[i]);
      proxy[i] = (*screen)(trial, cands[i].s);
    }
    faithful = refined(cands, proxy, refine);
  } else if (p.mode == SearchMode::kFast) {
    px.emplace(L, lins, *G, p.proxy_rows, tokens);
    for (size_t i = 0; i < cands.size(); ++i) proxy[i] = (*px)(cands[i].s.empty() ? nullptr : cands[i].s.data(), p, pool);
    proxy_is_loss = px->exact();
    if (!proxy_is_loss) faithful = refined(cands, proxy, refine);
  }
  if (proxy_is_loss) {
    log.loss_rtn = (*px)(nullptr, p, pool);
    log.evaluated = int(cands.size());
  } else {
    log.loss_rtn = run({"identity", 0, {}});
  }
  for (size_t i = 0; i < cands.size(); ++i) {
    const Candidate& c = cands[i];
    double l = std::numeric_limits<double>::quiet_NaN();
    if (proxy_is_loss) l = proxy[i];
    else if (faithful[i]) l = c.s.empty() ? log.loss_rtn : run(c);
    log.trials.push_back({c.kind, c.alpha, l, proxy[i]});
    if (std::isfinite(l) && l < log.loss_best) {
      log.loss_best = l;
      log.choice = c.kind;
      log.alpha = c.alpha;
      best_s = c.s;
    }
  }
  if (!std::isfinite(log.loss_best)) {  // no finite loss (non-finite activations): keep RTN
    log.loss_best = log.loss_rtn;
    log.choice = "identity";
    best_s.clear();
  }
  log.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log.cpu_seconds = process_cpu_seconds() - cpu0;
  return log;
}

void scale_columns(LayerTensors& L, int i, const std::vector<float>& s) {
  const int64_t k = L.k[size_t(i)];
  for (int64_t r = 0; r < L.n[size_t(i)]; ++r)
    for (int64_t c = 0; c < k; ++c) L.w[size_t(i)][size_t(r * k + c)] *= s[size_t(c)];
}

void divide_rows(LayerTensors& L, int i, const std::vector<float>& s) {
  const int64_t k = L.k[size_t(i)];
  for (int64_t r = 0; r < L.n[size_t(i)]; ++r)
    for (int64_t c = 0; c < k; ++c) L.w[size_t(i)][size_t(r * k + c)] /= s[size_t(r)];
}

// Per (row, group) clip ratio minimising ΔW_g·G_g·ΔW_gᵀ, G_g the group's diagonal block of the
// input Gram matrix (already divided by the applied scales).
ClipLog clip_linear(LayerTensors& L, int i, const std::string& name, const std::vector<float>& G, const AwqParams& p, int64_t tokens,
                    ThreadPool& pool) {
  const int64_t n = L.n[size_t(i)], k = L.k[size_t(i)], gs = p.group_size, ng = k / gs;
  auto& lo = L.clip_lo[size_t(i)];
  auto& hi = L.clip_hi[size_t(i)];
  lo.assign(size_t(n * ng), 1.0f);
  hi.assign(size_t(n * ng), 1.0f);
  std::vector<double> before(static_cast<size_t>(n)), after(static_cast<size_t>(n)), ratio_sum(static_cast<size_t>(n));
  const float* w = L.w[size_t(i)].data();
  pool.run(n, [&](int64_t r, int) {
    std::vector<float> fq(static_cast<size_t>(gs)), d(static_cast<size_t>(gs));
    for (int64_t g = 0; g < ng; ++g) {
      const float* wg = w + r * k + g * gs;
      float mn = wg[0], mx = wg[0];
      for (int64_t c = 1; c < gs; ++c) {
        mn = std::min(mn, wg[c]);
        mx = std::max(mx, wg[c]);
      }
      const float amax = std::max(std::fabs(mn), std::fabs(mx));
      double best = std::numeric_limits<double>::infinity();
      float blo = 1, bhi = 1;
      for (int s = 0; s < 10; ++s) {
        const float ratio = 1.0f - 0.05f * float(s);
        float rlo = ratio, rhi = ratio;
        if (!p.asym_clip) {  // AutoAWQ: clamp to ±max|w|·ratio
          rlo = mn < 0 ? std::max(mn, -amax * ratio) / mn : 1.0f;
          rhi = mx > 0 ? std::min(mx, amax * ratio) / mx : 1.0f;
        }
        fake_quant_group(wg, gs, p.q, rlo, rhi, fq.data());
        for (int64_t c = 0; c < gs; ++c) d[size_t(c)] = fq[size_t(c)] - wg[c];
        double l = 0;
        for (int64_t a = 0; a < gs; ++a) {
          double row = 0;
          const float* Gr = G.data() + size_t((g * gs + a) * k + g * gs);
          for (int64_t b = 0; b < gs; ++b) row += double(Gr[b]) * d[size_t(b)];
          l += row * d[size_t(a)];
        }
        if (s == 0) before[size_t(r)] += l;
        if (l < best) {
          best = l;
          blo = rlo;
          bhi = rhi;
        }
      }
      after[size_t(r)] += best;
      lo[size_t(r * ng + g)] = blo;
      hi[size_t(r * ng + g)] = bhi;
      ratio_sum[size_t(r)] += 0.5 * (blo + bhi);
    }
  });
  ClipLog log;
  log.linear = name;
  for (int64_t r = 0; r < n; ++r) {
    log.loss_before += before[size_t(r)];
    log.loss_after += after[size_t(r)];
    log.mean_ratio += ratio_sum[size_t(r)];
  }
  log.loss_before /= double(tokens) * double(n);
  log.loss_after /= double(tokens) * double(n);
  log.mean_ratio /= double(n * ng);
  return log;
}

// ‖ΔW·X‖² / ‖W·X‖² of linear i as it will be stored (its clip ratios applied), through the Gram
// matrix G of its inputs; NaN when the linear stays dense.
double relative_error(const LayerTensors& L, int i, const std::vector<float>& G, const AwqParams& p, int64_t tokens, ThreadPool& pool) {
  if (L.dense[size_t(i)]) return std::numeric_limits<double>::quiet_NaN();
  const int64_t n = L.n[size_t(i)], k = L.k[size_t(i)], gs = p.group_size, ng = k / gs;
  const auto& w = L.w[size_t(i)];
  const auto& lo = L.clip_lo[size_t(i)];
  const auto& hi = L.clip_hi[size_t(i)];
  std::vector<float> wq(w.size()), zero(w.size(), 0.0f);
  pool.run(n, [&](int64_t r, int) {
    for (int64_t g = 0; g < ng; ++g) {
      const size_t gi = size_t(r * ng + g);
      fake_quant_group(w.data() + r * k + g * gs, gs, p.q, lo.empty() ? 1.0f : lo[gi], hi.empty() ? 1.0f : hi[gi], wq.data() + r * k + g * gs);
    }
  });
  const double err = gram_loss(wq.data(), w.data(), n, k, G, tokens, pool), ref = gram_loss(w.data(), zero.data(), n, k, G, tokens, pool);
  return ref > 0 ? err / ref : 0.0;
}

std::vector<float> scaled_gram(std::vector<float> G, int64_t k, const std::vector<float>& s) {
  if (s.empty()) return G;
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < k; ++b) G[size_t(a * k + b)] /= s[size_t(a)] * s[size_t(b)];
  return G;
}

// The q/k/v loss on whole blocks `spread(nb, blocks)` of the calibration set: a candidate's
// self_attn output against the reference (the dense layer's own self_attn output, layer_forward's,
// else recomputed), evaluated `piece` blocks at a time into buffers sized once and reused by every
// candidate; the squared errors summed in block order (MseSum), so the loss has the same bits as
// over all blocks at once.
class AttnLoss {
 public:
  AttnLoss(const ModelConfig& cfg, const LayerTensors& L, const LayerInputs& in, int64_t nb, int64_t blocks, int64_t seq, int64_t piece,
           ThreadPool& pool, AttnBuffers& buf)
      : ids_(spread(nb, blocks)), seq_(seq), H_(cfg.hidden), piece_(std::min<int64_t>(piece, int64_t(ids_.size()))) {
    const int64_t qd = cfg.heads * cfg.head_dim, n = int64_t(ids_.size());
    if (n < nb) {  // the chosen blocks' input rows, gathered once
      std::vector<int64_t> rows;
      for (int64_t b : ids_)
        for (int64_t t = 0; t < seq; ++t) rows.push_back(b * seq + t);
      a_own_ = gather_rows(in.qkv_in.data(), H_, rows);
    }
    a_ = n < nb ? a_own_.data() : in.qkv_in.data();
    oin_.resize(size_t(piece_ * seq * qd));
    out_.resize(size_t(piece_ * seq * H_));
    if (in.attn_out.empty()) {  // the reference recomputed with the dense weights, in the chosen blocks' order
      ref_own_.resize(size_t(n * seq * H_));
      for (int64_t j0 = 0; j0 < n; j0 += piece_) {
        const int64_t m = std::min(piece_, n - j0);
        self_attention(cfg, L.w[0].data(), L.w[1].data(), L.w[2].data(), L.w[3].data(), L, a_ + j0 * seq * H_, m, seq, oin_.data(),
                       ref_own_.data() + j0 * seq * H_, pool, &buf);
      }
    } else {
      ref_ = in.attn_out.data();
    }
  }
  int64_t blocks() const { return int64_t(ids_.size()); }
  // The mean squared error of run(a, m, o_in, out) (the candidate's self_attn on the m blocks of
  // input rows a, o_proj's input into o_in, its output into out) against the reference.
  template <class Run>
  double operator()(const Run& run, ThreadPool& pool) {
    MseSum sum;
    const int64_t n = int64_t(ids_.size()), block = seq_ * H_;
    for (int64_t j0 = 0; j0 < n; j0 += piece_) {
      const int64_t m = std::min(piece_, n - j0);
      run(a_ + j0 * block, m, oin_.data(), out_.data());
      for (int64_t j = 0; j < m; ++j) {
        const float* ref = ref_ ? ref_ + ids_[size_t(j0 + j)] * block : ref_own_.data() + (j0 + j) * block;
        sum.add(out_.data() + j * block, ref, size_t(block), &pool);
      }
    }
    return sum.value();
  }

 private:
  std::vector<int64_t> ids_;  // the chosen blocks, in order
  int64_t seq_, H_, piece_;
  std::vector<float> a_own_, ref_own_, oin_, out_;
  const float* a_ = nullptr;    // the chosen blocks' input rows, in order
  const float* ref_ = nullptr;  // layer_forward's self_attn output (all blocks); null: ref_own_
};

// The gate/up loss on the T rows of m: a candidate's MLP output (down_proj dense) against the
// dense MLP's, evaluated chunk rows at a time into buffers sized once; mse summed in row order.
class MlpLoss {
 public:
  MlpLoss(const ModelConfig& cfg, const LayerTensors& L, const float* m, int64_t T, int64_t chunk, ThreadPool& pool)
      : cfg_(&cfg), L_(&L), m_(m), T_(T), chunk_(std::clamp<int64_t>(chunk, 1, T)) {
    ref_.resize(size_t(T * cfg.hidden));
    din_.resize(size_t(chunk_ * cfg.intermediate));
    out_.resize(size_t(chunk_ * cfg.hidden));
    const MlpWeights w(cfg, L.w[4].data(), L.w[5].data(), L.w[6].data(), pool);
    for (int64_t r0 = 0; r0 < T; r0 += chunk_)
      mlp_rows(cfg, w, L, m + r0 * cfg.hidden, std::min(chunk_, T - r0), din_.data(), ref_.data() + r0 * cfg.hidden, u_, pool);
  }
  double operator()(const float* wg, const float* wu, ThreadPool& pool) {
    const int64_t H = cfg_->hidden;
    const MlpWeights w(*cfg_, wg, wu, L_->w[6].data(), pool);
    MseSum sum;
    for (int64_t r0 = 0; r0 < T_; r0 += chunk_) {
      const int64_t rows = std::min(chunk_, T_ - r0);
      mlp_rows(*cfg_, w, *L_, m_ + r0 * H, rows, din_.data(), out_.data(), u_, pool);
      sum.add(out_.data(), ref_.data() + r0 * H, size_t(rows * H), &pool);
    }
    return sum.value();
  }

 private:
  const ModelConfig* cfg_;
  const LayerTensors* L_;
  const float* m_;
  int64_t T_, chunk_;
  std::vector<float> ref_, din_, out_, u_;
};

void release(std::vector<float>& v) { std::vector<float>().swap(v); }

// awq_layer; with `consume`, each of in's vectors is freed once nothing below reads it (the 7B
// shape's inputs are 0.5-1.4 GB each).
LayerLog awq_layer_impl(const ModelConfig& cfg, LayerTensors& L, LayerInputs& in, bool consume, int64_t tokens, const AwqParams& p,
                        ThreadPool& pool) {
  LayerLog log;
  const int64_t H = cfg.hidden, I = cfg.intermediate, qd = cfg.heads * cfg.head_dim;
  const auto any_dense = [&](std::initializer_list<int> v) {
    for (int i : v)
      if (L.dense[size_t(i)]) return true;
    return false;
  };
  const bool fast = p.mode == SearchMode::kFast, need_all = p.clip || p.sensitivity || p.keep_grams;
  const bool s_qkv_on = p.search && !any_dense({0, 1, 2});
  const bool v_o = p.search && L.n[2] == L.k[3] && cfg.kv_heads == cfg.heads && !any_dense({2, 3});
  const bool s_gu_on = p.search && !any_dense({4, 5}), s_down_on = p.search && !any_dense({5, 6});
  const auto drop = [&](std::vector<float>& v) {
    if (consume) release(v);
  };
  // XᵀX of each linear's input, only where a search or the clip/sensitivity pass reads it.
  const auto timed_gram = [&](bool want, const std::vector<float>& x, int64_t k) {
    if (!want) return std::vector<float>{};
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = process_cpu_seconds();
    std::vector<float> g = gram(x, tokens, k, pool);
    log.gram_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log.gram_cpu_seconds += process_cpu_seconds() - cpu0;
    return g;
  };
  const int64_t nblocks = tokens / p.seq_len;
  const bool screened = fast && std::clamp<int64_t>(p.attn_screen_tokens / p.seq_len, 1, nblocks) <
                                    std::clamp<int64_t>(p.attn_loss_tokens / p.seq_len, 1, nblocks);
  // down_in and o_in are read only here (Gram matrix, mean |x|): freed at once.
  std::vector<float> G_down = timed_gram(need_all || s_down_on, in.down_in, I);
  const std::vector<float> xm_down = s_down_on ? x_mean(in.down_in, tokens, I) : std::vector<float>{};
  drop(in.down_in);
  std::vector<float> G_o = timed_gram(need_all || v_o, in.o_in, qd);
  const std::vector<float> xm_o = v_o ? x_mean(in.o_in, tokens, qd) : std::vector<float>{};
  drop(in.o_in);
  std::vector<float> G_qkv = timed_gram(need_all || (fast && s_qkv_on && !screened), in.qkv_in, H),
                     G_mlp = timed_gram(need_all || (fast && s_gu_on), in.mlp_in, H);
  std::vector<float> s_qkv, s_o, s_gu, s_down;

  // 1. q, k, v by input_layernorm; loss on self_attn's output (o_proj dense). The fast search's
  //    faithful loss (of refine_attn candidates) runs on at most attn_loss_tokens tokens: whole
  //    blocks, evenly spaced; its ranking of the candidates is the same loss on attn_screen_tokens
  //    (whole blocks, evenly spaced) when those are fewer, else the Gram proxy. Both in pieces of
  //    chunk_tokens (whole blocks).
  if (s_qkv_on) {
    const int64_t seq = p.seq_len, nb = tokens / seq;
    const int64_t sb = fast ? std::clamp<int64_t>(p.attn_loss_tokens / seq, 1, nb) : nb;
    const int64_t sc = std::clamp<int64_t>(p.attn_screen_tokens / seq, 1, nb);
    const bool int16 = p.int16_trials && trial_gemm_usable(p.q, H, p.group_size);
    const int64_t piece = chunk_blocks(seq, p.chunk_tokens);
    AttnBuffers buf;
    buf.chunk_tokens = p.chunk_tokens;
    std::vector<float> qkv;
    const DenseWeight Wo(L.w[3].data(), H, qd, pool);
    AttnLoss full(cfg, L, in, nb, sb, seq, piece, pool, buf);
    std::optional<AttnLoss> scr;
    if (fast && sc < sb) scr.emplace(cfg, L, in, nb, sc, seq, piece, pool, buf);
    const auto attn_loss = [&](AttnLoss& e, const std::vector<std::vector<float>>& t, const std::vector<float>& s) {
      if (int16) {
        const kernels::PackedLinear w = pack_trial(L, {0, 1, 2}, s.empty() ? nullptr : s.data(), p.group_size, p.q, pool);
        return e([&](const float* a, int64_t m, float* oin, float* out) { self_attention_trial(cfg, L, w, Wo, a, m, seq, oin, out, pool, qkv, &buf); },
                 pool);
      }
      return e([&](const float* a, int64_t m, float* oin, float* out) {
        self_attention(cfg, t[0].data(), t[1].data(), t[2].data(), L.w[3].data(), L, a, m, seq, oin, out, pool, &buf);
      }, pool);
    };
    const ScreenFn screen = [&](const std::vector<std::vector<float>>& t, const std::vector<float>& s) { return attn_loss(*scr, t, s); };
    log.groups.push_back(search("qkv", L, {0, 1, 2}, x_mean(in.qkv_in, tokens, H), &G_qkv, tokens, p.refine_attn, p, pool,
                                [&](const std::vector<std::vector<float>>& t, const std::vector<float>& s) { return attn_loss(full, t, s); },
                                s_qkv, scr ? &screen : nullptr, !int16));
  }
  drop(in.qkv_in);
  drop(in.attn_out);
  // 2. o by v, when v's output rows are o's input columns (no GQA); Gram form.
  if (v_o) {
    GramScratch gs;
    log.groups.push_back(search("o", L, {3}, xm_o, &G_o, tokens, p.refine, p, pool,
                                [&](const std::vector<std::vector<float>>& t, const std::vector<float>&) {
                                  return gram_sum(t[0].data(), L.w[3].data(), L.n[3], L.k[3], G_o, pool, gs) / double(tokens) / double(L.n[3]);
                                },
                                s_o));
  }
  // 3. gate, up by post_attention_layernorm; loss on the MLP's output (down_proj dense). The fast
  //    search's faithful loss runs on at most loss_tokens evenly spaced tokens, in pieces of chunk_tokens.
  if (s_gu_on) {
    const int64_t T = fast ? std::clamp<int64_t>(p.loss_tokens, 1, tokens) : tokens;
    const std::vector<float> sub = T < tokens ? gather_rows(in.mlp_in.data(), H, spread(tokens, T)) : std::vector<float>{};
    MlpLoss loss(cfg, L, T < tokens ? sub.data() : in.mlp_in.data(), T, p.chunk_tokens, pool);
    log.groups.push_back(search("gate_up", L, {4, 5}, x_mean(in.mlp_in, tokens, H), &G_mlp, tokens, p.refine, p, pool,
                                [&](const std::vector<std::vector<float>>& t, const std::vector<float>&) {
                                  return loss(t[0].data(), t[1].data(), pool);
                                },
                                s_gu));
  }
  drop(in.mlp_in);
  // 4. down by up; Gram form.
  if (s_down_on) {
    GramScratch gs;
    log.groups.push_back(search("down", L, {6}, xm_down, &G_down, tokens, p.refine, p, pool,
                                [&](const std::vector<std::vector<float>>& t, const std::vector<float>&) {
                                  return gram_sum(t[0].data(), L.w[6].data(), L.n[6], L.k[6], G_down, pool, gs) / double(tokens) /
                                         double(L.n[6]);
                                },
                                s_down));
  }

  // Apply: 1/s into the previous op, s into the linears' input columns.
  if (!s_qkv.empty()) {
    for (int i : {0, 1, 2}) scale_columns(L, i, s_qkv);
    for (int64_t c = 0; c < H; ++c) L.attn_norm[size_t(c)] /= s_qkv[size_t(c)];
    L.attn_norm_changed = true;
  }
  if (!s_o.empty()) {
    divide_rows(L, 2, s_o);
    if (!L.b[2].empty()) {
      for (int64_t c = 0; c < L.n[2]; ++c) L.b[2][size_t(c)] /= s_o[size_t(c)];
      L.v_bias_changed = true;
    }
    scale_columns(L, 3, s_o);
  }
  if (!s_gu.empty()) {
    for (int i : {4, 5}) scale_columns(L, i, s_gu);
    for (int64_t c = 0; c < H; ++c) L.mlp_norm[size_t(c)] /= s_gu[size_t(c)];
    L.mlp_norm_changed = true;
  }
  if (!s_down.empty()) {
    divide_rows(L, 5, s_down);
    if (!L.b[5].empty()) fail("", "up_proj.bias", "AWQ down/up scaling with an up_proj bias is not supported");
    scale_columns(L, 6, s_down);
  }
  // Clip search on v, o, gate, up, down (q and k are skipped, as AutoAWQ does: their error passes
  // through the q·k product, which a per-group output loss does not see).
  const char* names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  if (need_all) {
    const auto t0 = std::chrono::steady_clock::now();
    // The Gram matrices divided by the applied scales, in place (no copies).
    std::vector<float> Gv = scaled_gram(std::move(G_qkv), H, s_qkv), Go = scaled_gram(std::move(G_o), qd, s_o),
                       Gm = scaled_gram(std::move(G_mlp), H, s_gu), Gd = scaled_gram(std::move(G_down), I, s_down);
    const std::vector<float>* grams[7] = {&Gv, &Gv, &Gv, &Go, &Gm, &Gm, &Gd};
    if (p.clip)
      for (int i = 2; i < 7; ++i)
        if (!L.dense[size_t(i)]) log.clips.push_back(clip_linear(L, i, names[i], *grams[i], p, tokens, pool));
    if (p.sensitivity)
      for (int i = 0; i < 7; ++i) log.rel_error[size_t(i)] = relative_error(L, i, *grams[i], p, tokens, pool);
    log.clip_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (p.keep_grams) log.grams = {std::move(Gv), std::move(Go), std::move(Gm), std::move(Gd)};
  }
  return log;
}

}  // namespace

LayerLog awq_layer(const ModelConfig& cfg, LayerTensors& L, const LayerInputs& in, int64_t tokens, const AwqParams& p, ThreadPool& pool) {
  return awq_layer_impl(cfg, L, const_cast<LayerInputs&>(in), false, tokens, p, pool);  // consume false: `in` is only read
}

LayerLog awq_layer(const ModelConfig& cfg, LayerTensors& L, LayerInputs&& in, int64_t tokens, const AwqParams& p, ThreadPool& pool) {
  return awq_layer_impl(cfg, L, in, true, tokens, p, pool);
}

}  // namespace awq::quant_detail
