// `awq compare`: dequantize each linear of QUANT a block of rows at a time and measure it against
// REF's dense weight. Working memory: one module's QuantLinear plus a few row blocks per thread;
// the mapped pages of each module are dropped once it is measured (release_pages).
#include "awq/compare.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include "awq/error.h"
#include "awq/formats.h"
#include "awq/model_dir.h"
#include "awq/thread_pool.h"
#include "awq/value_scan.h"
#include "eval/error_accumulator.h"

namespace awq {
namespace {

constexpr int64_t kBlockElems = 1 << 18;  // ~1 MB of f32 per block and operand

std::string kind_of(const std::string& module) {
  const size_t dot = module.rfind('.');
  return dot == std::string::npos ? module : module.substr(dot + 1);
}

std::string module_of(const std::string& weight_name) {
  return weight_name.substr(0, weight_name.size() - std::string(".weight").size());
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A dense 2-D linear weight (embeddings and norms are not linears).
bool is_dense_linear(const TensorView& t) {
  return t.shape.size() == 2 && ends_with(t.name, ".weight") && is_float(t.dtype) &&
         t.name.find("embed") == std::string::npos && t.name.find("norm") == std::string::npos;
}

// Opens QUANT's format reader, or nullptr when QUANT is a dense checkpoint.
std::unique_ptr<FormatReader> open_quant(const ModelDir& dir) {
  if (dir.quant_config().is_object() || dir.hf_quant_config().is_object() || dir.is_npz()) return open_format(dir);
  return open_format_from_tensors(dir);  // quantized tensors without a config, or nullptr
}

void load_rows(const TensorView& t, int64_t row0, int64_t rows, float* out) {
  const int64_t k = t.dim(1);
  for (int64_t i = 0; i < rows * k; ++i) out[i] = load_float(t.data, t.dtype, size_t(row0 * k + i));
}

// One linear to measure: the reference tensor and where the copy's rows come from.
struct Job {
  std::string module;
  const TensorView* ref = nullptr;
  const TensorView* dense = nullptr;  // QUANT's dense weight, or
  bool quantized = false;              // the reader's module `module`
};

// Throws for a measured job whose weights hold a NaN/Inf (e.nonfinite): names where it is.
[[noreturn]] void refuse_nonfinite(const Job& job, const QuantLinear& q, const LayerError& e, const std::string& ref_dir,
                                   const std::string& quant_dir) {
  const auto kind = [](float v) { return std::string(std::isnan(v) ? "NaN" : "Inf"); };
  const std::string at = "row " + std::to_string(e.nonfinite_row) + ", column " + std::to_string(e.nonfinite_col);
  const std::string tail = "; compare measures nothing from non-finite weights (`awq check` lists every NaN/Inf tensor)";
  if (!std::isfinite(e.nonfinite_ref))
    fail(ref_dir, job.ref->name, "REF holds " + kind(e.nonfinite_ref) + " at " + at + " (the first in this weight)" + tail);
  if (!job.quantized) fail(quant_dir, job.dense->name, "QUANT holds " + kind(e.nonfinite_quant) + " at " + at + " (the first in this weight)" + tail);
  std::string why;
  for (const auto& f : scan_nonfinite(q))
    if (f.scan.any()) why += "; its " + f.scan.summary(f.role);
  fail(quant_dir, job.module, "QUANT's dequantized weight is " + kind(e.nonfinite_quant) + " at " + at + why + tail);
}

LayerError measure(const Job& job, const FormatReader* reader, ThreadPool& pool, const std::string& ref_dir, const std::string& quant_dir) {
  const int64_t n = job.ref->dim(0), k = job.ref->dim(1);
  QuantLinear q;
  int64_t group_size = std::min<int64_t>(128, k);
  if (job.quantized) {
    q = reader->read(job.module);
    group_size = q.group_size;
  }
  const int64_t rows_per_block = std::max<int64_t>(1, kBlockElems / std::max<int64_t>(k, 1));
  const int64_t blocks = (n + rows_per_block - 1) / rows_per_block;
  std::vector<ErrorAccumulator> accs;
  accs.reserve(size_t(blocks));
  for (int64_t b = 0; b < blocks; ++b) accs.emplace_back(k, group_size, &q.g_idx);
  std::vector<std::vector<float>> ref_buf(size_t(pool.size())), q_buf(size_t(pool.size()));
  pool.run(blocks, [&](int64_t b, int thread) {
    const int64_t r0 = b * rows_per_block, rows = std::min(rows_per_block, n - r0);
    auto& rb = ref_buf[size_t(thread)];
    auto& qb = q_buf[size_t(thread)];
    rb.resize(size_t(rows_per_block * k));
    qb.resize(size_t(rows_per_block * k));
    load_rows(*job.ref, r0, rows, rb.data());
    if (job.quantized) dequantize_rows_ref(q, DType::F32, r0, r0 + rows, reinterpret_cast<uint8_t*>(qb.data()));
    else load_rows(*job.dense, r0, rows, qb.data());
    accs[size_t(b)].add_rows(rb.data(), qb.data(), r0, rows);
  });
  for (int64_t b = 1; b < blocks; ++b) accs[0].merge(accs[size_t(b)]);
  LayerError e = accs[0].result(n);
  if (e.nonfinite) refuse_nonfinite(job, q, e, ref_dir, quant_dir);
  e.name = job.module;
  e.kind = kind_of(job.module);
  e.quantized = job.quantized;
  return e;
}

// Drops the pages of the tensors a measured job read (REF's weight, QUANT's dense weight or the
// module's stored tensors), so the process's RSS stays one module's, not the files'.
void release_job(const Job& job, const ModelDir& quant, const FormatReader* reader) {
  release_pages(*job.ref);
  if (job.dense) release_pages(*job.dense);
  if (job.quantized)
    for (const std::string& name : reader->module_tensors(job.module))
      if (const TensorView* t = quant.find(name)) release_pages(*t);
}

// Pairs every linear of QUANT with REF's weight; names what does not pair.
std::vector<Job> plan_jobs(const ModelDir& ref, const ModelDir& quant, const FormatReader* reader,
                           CompareResult& res) {
  std::vector<Job> jobs;
  auto add = [&](const std::string& module, const std::string& ref_name, int64_t n, int64_t k,
                 const TensorView* dense) {
    const TensorView* r = ref.find(ref_name);
    if (!r) return res.missing_in_ref.push_back(module);
    if (r->shape.size() != 2 || !is_float(r->dtype))
      fail(ref.path(), ref_name, "expected a dense 2-D F32/BF16/F16 weight, found " +
                                     std::string(dtype_name(r->dtype)) + r->shape_str());
    if (r->dim(0) != n || r->dim(1) != k)
      return res.mismatched.push_back(module + ": REF " + r->shape_str() + " vs QUANT [" + std::to_string(n) +
                                      ", " + std::to_string(k) + "]");
    jobs.push_back({module, r, dense, dense == nullptr});
  };
  std::set<std::string> consumed;
  if (reader) {
    for (const auto& m : reader->modules()) {
      for (const auto& t : reader->module_tensors(m)) consumed.insert(t);
      const ModuleInfo info = reader->check(m);
      add(m, reader->dense_name(m), info.n, info.k, nullptr);
    }
  }
  for (const TensorView* t : quant.tensors()) {
    if (consumed.count(t->name) || !is_dense_linear(*t)) continue;
    const std::string name = reader ? reader->dense_tensor_name(t->name) : t->name;
    add(module_of(name), name, t->dim(0), t->dim(1), t);
  }
  return jobs;
}

void rank_and_total(CompareResult& res) {
  std::stable_sort(res.layers.begin(), res.layers.end(), [](const LayerError& a, const LayerError& b) {
    const bool an = std::isnan(a.rel_mse), bn = std::isnan(b.rel_mse);
    if (an != bn) return an;  // non-finite first: the worst of all
    return a.rel_mse > b.rel_mse;
  });
  std::map<std::string, KindTotal> kinds;
  std::map<std::string, std::pair<double, double>> energy;  // kind -> (err2, ref2)
  double err_all = 0, ref_all = 0;
  for (const auto& l : res.layers) {
    energy[l.kind].first += l.err_energy;
    energy[l.kind].second += l.ref_energy;
    err_all += l.err_energy;
    ref_all += l.ref_energy;
    auto& kt = kinds[l.kind];
    kt.kind = l.kind;
    kt.layers++;
    kt.below_bar += l.below_bar;
    kt.min_cosine = std::min(kt.min_cosine, l.cosine);
    if (std::isnan(l.cosine)) kt.min_cosine = l.cosine;
  }
  auto ratio = [](double err, double ref) {
    return ref > 0 ? err / ref : (err == 0 ? 0.0 : std::numeric_limits<double>::infinity());
  };
  for (auto& [kind, kt] : kinds) {
    kt.rel_mse = ratio(energy[kind].first, energy[kind].second);
    res.kinds.push_back(kt);
  }
  res.total_rel_mse = ratio(err_all, ref_all);
}

}  // namespace

CompareResult compare_weights(const std::string& ref_dir, const std::string& quant_dir, const CompareOptions& opt) {
  ModelDir ref(ref_dir), quant(quant_dir);
  auto reader = open_quant(quant);
  if (open_quant(ref)) fail(ref_dir, "", "REF must be a dense checkpoint (F32/BF16/F16); this one is quantized");
  CompareResult res;
  res.ref_path = ref_dir;
  res.quant_path = quant_dir;
  res.quant_format = reader ? reader->scheme().format : "dense";
  res.cosine_bar = opt.cosine_bar;
  const auto jobs = plan_jobs(ref, quant, reader.get(), res);
  if (jobs.empty())
    fail(quant_dir, "", "no linear weight of QUANT matches one of REF (" + std::to_string(res.missing_in_ref.size()) +
                            " missing in REF, " + std::to_string(res.mismatched.size()) + " of other shape)");
  ThreadPool pool(opt.threads);
  for (size_t i = 0; i < jobs.size(); ++i) {
    LayerError e = measure(jobs[i], reader.get(), pool, ref_dir, quant_dir);
    release_job(jobs[i], quant, reader.get());
    e.below_bar = !(e.cosine >= opt.cosine_bar);  // NaN is below every bar
    res.layers.push_back(std::move(e));
    if (opt.on_progress) opt.on_progress(i + 1, jobs.size());
  }
  rank_and_total(res);
  return res;
}

}  // namespace awq
