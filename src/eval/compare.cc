// `awq compare`: dequantize each linear of QUANT a block of rows at a time and measure it against
// REF's dense weight. Working memory: one module's QuantLinear plus a few row blocks per thread;
// the mapped pages of each module are dropped once it is measured (release_pages).
#include "awq/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include "awq/error.h"
#include "awq/formats.h"
#include "awq/gguf.h"
#include "awq/model_dir.h"
#include "awq/thread_pool.h"
#include "awq/value_scan.h"
#include "eval/error_accumulator.h"
#include "eval/fold_undo.h"

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

// Throws when a norm weight holds a NaN/Inf: the model it belongs to is broken, and no fold (and
// no figure of the linears it feeds) can be derived from it.
void refuse_nonfinite_norm(const std::vector<float>& g, const std::string& dir, const std::string& norm,
                           const char* which) {
  for (size_t c = 0; c < g.size(); ++c)
    if (!std::isfinite(g[c]))
      fail(dir, norm, std::string(which) + " holds " + (std::isnan(g[c]) ? "NaN" : "Inf") + " at channel " +
                          std::to_string(c) + " (the first in this norm); compare measures nothing from non-finite " +
                          "weights (`awq check` lists every NaN/Inf tensor)");
}

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

// Multipliers applied to QUANT's rows before they are measured: 1/s per input column (a fold into
// the columns undone), s per row (a producer's rows undone); null: 1.
struct Undo {
  const std::vector<double>* cols = nullptr;
  const std::vector<double>* rows = nullptr;
  std::string cols_from, rows_from;
};

// Streams job's rows in blocks over the pool: fn(block, row0, rows, REF rows, QUANT rows as undone,
// thread), both row-major f32. q is job's QuantLinear when quantized.
void stream_rows(const Job& job, const QuantLinear& q, ThreadPool& pool, const Undo& u, int64_t rows_per_block,
                 const std::function<void(int64_t, int64_t, int64_t, const float*, const float*)>& fn) {
  const int64_t n = job.ref->dim(0), k = job.ref->dim(1);
  const int64_t blocks = (n + rows_per_block - 1) / rows_per_block;
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
    if (u.cols || u.rows)
      for (int64_t r = 0; r < rows; ++r) {
        const double rs = u.rows ? (*u.rows)[size_t(r0 + r)] : 1.0;
        float* row = qb.data() + r * k;
        for (int64_t c = 0; c < k; ++c) row[c] = float(double(row[c]) * rs * (u.cols ? (*u.cols)[size_t(c)] : 1.0));
      }
    fn(b, r0, rows, rb.data(), qb.data());
  });
}

int64_t rows_per_block(const Job& job) { return std::max<int64_t>(1, kBlockElems / std::max<int64_t>(job.ref->dim(1), 1)); }

QuantLinear read_quant(const Job& job, const FormatReader* reader) { return job.quantized ? reader->read(job.module) : QuantLinear{}; }

LayerError measure(const Job& job, const FormatReader* reader, ThreadPool& pool, const Undo& u, const std::string& ref_dir,
                   const std::string& quant_dir) {
  const int64_t n = job.ref->dim(0), k = job.ref->dim(1);
  const QuantLinear q = read_quant(job, reader);
  const int64_t group_size = job.quantized ? q.group_size : std::min<int64_t>(128, k);
  const int64_t rpb = rows_per_block(job), blocks = (n + rpb - 1) / rpb;
  std::vector<ErrorAccumulator> accs;
  accs.reserve(size_t(blocks));
  for (int64_t b = 0; b < blocks; ++b) accs.emplace_back(k, group_size, &q.g_idx);
  stream_rows(job, q, pool, u, rpb, [&](int64_t b, int64_t r0, int64_t rows, const float* ref, const float* quant) {
    accs[size_t(b)].add_rows(ref, quant, r0, rows);
  });
  for (int64_t b = 1; b < blocks; ++b) accs[0].merge(accs[size_t(b)]);
  LayerError e = accs[0].result(n);
  if (e.nonfinite) refuse_nonfinite(job, q, e, ref_dir, quant_dir);
  e.name = job.module;
  e.kind = kind_of(job.module);
  e.quantized = job.quantized;
  e.undone_cols = u.cols ? u.cols_from : "";
  e.undone_rows = u.rows ? u.rows_from : "";
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

// --- AWQ scale folds (FoldScales) --------------------------------------------------------------

// The linears AWQ scales with the norm before them (Llama, Mistral, Qwen2, Qwen3 layouts; AutoAWQ's
// scaling groups and ours, docs/quantize.md), and those whose s divides a producer's rows.
constexpr struct { const char* linear; const char* norm; } kNormFed[] = {
    {".self_attn.q_proj", ".input_layernorm.weight"},
    {".self_attn.k_proj", ".input_layernorm.weight"},
    {".self_attn.v_proj", ".input_layernorm.weight"},
    {".mlp.gate_proj", ".post_attention_layernorm.weight"},
    {".mlp.up_proj", ".post_attention_layernorm.weight"},
};
constexpr struct { const char* consumer; const char* producer; } kRowFed[] = {
    {".self_attn.o_proj", ".self_attn.v_proj"},
    {".mlp.down_proj", ".mlp.up_proj"},
};

// Layer index from "model.layers.12.mlp.down_proj" (-1 if none).
long layer_of(const std::string& name) {
  const size_t p = name.find("layers.");
  return p == std::string::npos ? -1 : std::strtol(name.c_str() + p + 7, nullptr, 10);
}

std::vector<float> load_vector(const TensorView& t) {
  std::vector<float> v(size_t(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = load_float(t.data, t.dtype, i);
  return v;
}

std::vector<double> inverse(const std::vector<double>& s) {
  std::vector<double> inv(s.size());
  for (size_t i = 0; i < s.size(); ++i) inv[i] = 1.0 / s[i];
  return inv;
}

// What find_folds hands to the measuring loop: the multipliers per module (vectors owned here).
struct FoldPlan {
  std::map<std::string, Undo> undo;
  std::map<std::string, std::vector<double>> owned;  // source -> 1/s (cols) or "rows:" + source -> s
};

class FoldFinder {
 public:
  FoldFinder(const ModelDir& ref, const ModelDir& quant, const FormatReader* reader, const std::vector<Job>& jobs,
             ThreadPool& pool, bool undo)
      : ref_(ref), quant_(quant), reader_(reader), jobs_(jobs), pool_(pool), undo_(undo) {
    for (size_t i = 0; i < jobs.size(); ++i) by_module_[jobs[i].module] = i;
    for (const TensorView* t : quant.tensors()) quant_dense_[reader ? reader->dense_tensor_name(t->name) : t->name] = t;
  }

  // Every fold looked for (norms first, then rows: a producer's rows are fitted after its columns
  // are undone), sorted by layer; fills plan with the multipliers of those undone.
  std::vector<FoldScales> run(FoldPlan& plan) {
    std::vector<FoldScales> folds;
    std::map<std::string, std::vector<std::string>> fed;  // norm -> its linears, in job order
    for (const Job& job : jobs_)
      for (const auto& e : kNormFed)
        if (ends_with(job.module, e.linear))
          fed[job.module.substr(0, job.module.size() - std::string(e.linear).size()) + e.norm].push_back(job.module);
    for (const auto& [norm, linears] : fed) folds.push_back(norm_fold_of(norm, linears, plan));
    if (undo_)
      for (const Job& job : jobs_)
        for (const auto& e : kRowFed)
          if (ends_with(job.module, e.consumer)) {
            const std::string producer = job.module.substr(0, job.module.size() - std::string(e.consumer).size()) + e.producer;
            if (by_module_.count(producer)) folds.push_back(row_fold_of(producer, job, plan));
          }
    std::stable_sort(folds.begin(), folds.end(), [](const FoldScales& a, const FoldScales& b) {
      return layer_of(a.source) != layer_of(b.source) ? layer_of(a.source) < layer_of(b.source) : a.source < b.source;
    });
    return folds;
  }

 private:
  FoldScales norm_fold_of(const std::string& norm, const std::vector<std::string>& linears, FoldPlan& plan) {
    const int64_t k = jobs_[by_module_.at(linears[0])].ref->dim(1);
    const TensorView* r = ref_.find(norm);
    const auto qi = quant_dense_.find(norm);
    const TensorView* q = qi == quant_dense_.end() ? nullptr : qi->second;
    FoldScales f;
    auto usable = [k](const TensorView* t) { return t && t->shape.size() == 1 && t->dim(0) == k && is_float(t->dtype); };
    if (usable(r) && usable(q)) {
      const std::vector<float> gr = load_vector(*r), gq = load_vector(*q);
      refuse_nonfinite_norm(gr, ref_.path(), norm, "REF");
      refuse_nonfinite_norm(gq, quant_.path(), norm, "QUANT");
      f = norm_fold(gr.data(), r->dtype, gq.data(), q->dtype, k);
    } else {
      f.channels = k;
      f.note = std::string(!r ? "not in REF" : !q ? "not in QUANT" : "not a 1-D float vector of the linears' width") +
               ": scales not examined";
    }
    f.source = norm;
    f.consumers = linears;
    f.undone = f.folded && undo_;
    if (f.undone) {
      const auto& inv = plan.owned[norm] = inverse(f.s);
      for (const auto& m : linears) {
        plan.undo[m].cols = &inv;
        plan.undo[m].cols_from = norm;
      }
    }
    return f;
  }

  // Fits the producer's rows (its columns undone where its norm's fold is) against REF's.
  FoldScales row_fold_of(const std::string& producer, const Job& consumer, FoldPlan& plan) {
    const Job& p = jobs_[by_module_.at(producer)];
    FoldScales f;
    if (p.ref->dim(0) != consumer.ref->dim(1)) {
      f.channels = consumer.ref->dim(1);
      f.note = "the producer's rows (" + std::to_string(p.ref->dim(0)) + ") are not the consumer's columns (grouped-query attention): no fold possible";
    } else {
      std::vector<RowDots> dots(size_t(p.ref->dim(0)));
      const QuantLinear q = read_quant(p, reader_);
      const int64_t k = p.ref->dim(1);
      stream_rows(p, q, pool_, plan.undo[producer], rows_per_block(p),
                  [&](int64_t, int64_t r0, int64_t rows, const float* ref, const float* quant) {
                    for (int64_t r = 0; r < rows; ++r) dots[size_t(r0 + r)] = row_dots(ref + r * k, quant + r * k, k);
                  });
      release_job(p, quant_, reader_);
      f = row_fold_from_dots(dots, k);
    }
    f.from_norm = false;
    f.source = producer;
    f.producer = producer;
    f.consumers = {consumer.module};
    f.undone = f.folded && undo_;
    if (f.undone) {
      const auto& s = plan.owned["rows:" + producer] = f.s;
      const auto& inv = plan.owned[producer] = inverse(f.s);
      plan.undo[producer].rows = &s;
      plan.undo[producer].rows_from = producer;
      plan.undo[consumer.module].cols = &inv;
      plan.undo[consumer.module].cols_from = producer;
    }
    return f;
  }

  const ModelDir& ref_;
  const ModelDir& quant_;
  const FormatReader* reader_;
  const std::vector<Job>& jobs_;
  ThreadPool& pool_;
  bool undo_;
  std::map<std::string, size_t> by_module_;
  std::map<std::string, const TensorView*> quant_dense_;
};

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
  for (const auto& [path, which] : {std::pair<const std::string&, const char*>{ref_dir, "REF"}, {quant_dir, "QUANT"}})
    if (is_gguf_file(path))  // else named "not a .safetensors or .npz file"
      fail(path, "", std::string(which) + " is a GGUF file: compare reads Hugging Face checkpoints (safetensors or npz); " +
                         "`awq eval MODEL.gguf --ref DIR` measures a GGUF model against one");
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
  FoldPlan plan;
  res.undo_folds = opt.undo_folds;
  res.folds = FoldFinder(ref, quant, reader.get(), jobs, pool, opt.undo_folds).run(plan);
  const Undo none;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const auto u = plan.undo.find(jobs[i].module);
    LayerError e = measure(jobs[i], reader.get(), pool, u == plan.undo.end() ? none : u->second, ref_dir, quant_dir);
    release_job(jobs[i], quant, reader.get());
    // Flagged when the direction is off (cosine under the bar C) or the size is: a relative MSE
    // above 2(1 - C), that of a weight at the bar with its norm kept (|W'-W|^2 = 2|W|^2 (1 - cos)),
    // so scales off by a constant factor (cosine 1) are flagged too. NaN is flagged.
    e.below_bar = !(e.cosine >= opt.cosine_bar) || !(e.rel_mse <= 2 * (1 - opt.cosine_bar));
    res.layers.push_back(std::move(e));
    if (opt.on_progress) opt.on_progress(i + 1, jobs.size());
  }
  rank_and_total(res);
  return res;
}

}  // namespace awq
