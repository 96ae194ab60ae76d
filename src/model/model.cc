// Model: loading (config, weights, RoPE table, thread pool) and the forward pass over a KV cache.
#include "awq/model.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "awq/error.h"
#include "awq/gguf.h"
#include "awq/gguf_arch.h"
#include "awq/model_ops.h"
#include "awq/thread_pool.h"
#include "model/weights.h"

namespace awq {

using model::LinearGroup;

namespace {

// Streams decoder layers through a LayerCache, with an optional background thread that reads and
// repacks the next layers ahead of the forward pass. A prefetched layer is held here until taken
// (so it is used even when the cache's budget cannot keep it): memory is the budget plus `depth`
// layers plus the one computing.
class LayerStream {
 public:
  LayerStream(std::shared_ptr<LayerCache> cache, const model::Weights& w, const ModelConfig& cfg, int depth)
      : cache_(std::move(cache)), w_(w), cfg_(cfg), owner_(LayerCache::new_owner_id()), depth_(std::max(depth, 0)) {
    if (depth_ > 0) worker_ = std::thread([this] { run(); });
  }
  ~LayerStream() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    cache_->evict_prefix(owner_);
  }

  // Layer i, ready; asks the prefetcher for the `depth` layers after it.
  std::shared_ptr<const model::LayerWeights> get(int64_t i) {
    LayerCache::Value v = take(i);
    if (!v) v = cache_->get(key(i), [&] { return load(i); });
    for (int d = 1; d <= depth_; ++d) request((i + d) % cfg_.layers);
    return std::static_pointer_cast<const model::LayerWeights>(v);
  }

 private:
  std::string key(int64_t i) const { return owner_ + "layer" + std::to_string(i); }
  LayerCache::Loaded load(int64_t i) const {
    auto l = std::make_shared<model::LayerWeights>(model::load_layer(w_, cfg_, i));
    const size_t bytes = model::layer_bytes(*l);
    return {std::move(l), bytes};
  }
  void request(int64_t i) {
    if (cache_->present_or_loading(key(i))) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (ready_.count(i) || inflight_.count(i) || std::find(queue_.begin(), queue_.end(), i) != queue_.end()) return;
    queue_.push_back(i);
    cv_.notify_all();
  }
  // The prefetched layer i if the worker has it or is loading it (waits for that), else null.
  LayerCache::Value take(int64_t i) {
    std::unique_lock<std::mutex> lock(mu_);
    auto q = std::find(queue_.begin(), queue_.end(), i);
    if (q != queue_.end()) queue_.erase(q);  // not started: the caller loads it now
    cv_.wait(lock, [&] { return !inflight_.count(i); });
    auto it = ready_.find(i);
    if (it == ready_.end()) return nullptr;
    LayerCache::Value v = std::move(it->second);
    ready_.erase(it);
    return v;
  }
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      const int64_t i = queue_.front();
      queue_.pop_front();
      inflight_.insert(i);
      lock.unlock();
      LayerCache::Value v;
      try {
        v = cache_->get(key(i), [&] { return load(i); });
      } catch (...) {
        v = nullptr;  // the forward pass loads it again and gets the error itself
      }
      lock.lock();
      inflight_.erase(i);
      if (v && ready_.size() < size_t(depth_)) ready_[i] = std::move(v);
      cv_.notify_all();
    }
  }

  std::shared_ptr<LayerCache> cache_;
  const model::Weights& w_;
  const ModelConfig& cfg_;
  const std::string owner_;
  const int depth_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int64_t> queue_;
  std::set<int64_t> inflight_;
  std::map<int64_t, LayerCache::Value> ready_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace

struct Model::Impl {
  ModelConfig cfg;
  model::Weights w;
  kernels::RopeTable rope;
  std::unique_ptr<ThreadPool> pool;
  kernels::Path path = kernels::Path::kF32;
  double serial_scale = 1.0;
  ModelOptions::KvDtype kv_dtype = ModelOptions::KvDtype::kF32;
  bool kv_f16() const { return kv_dtype == ModelOptions::KvDtype::kF16; }  // keys and values in f16
  // Sizes layer `layer` of c for its batch and capacity (the other pair of buffers stays empty).
  void size_kv_layer(KvCache& c, int64_t layer) const;
  mutable std::mutex mu;  // one forward at a time (the pool is not reentrant)
  std::unique_ptr<LayerStream> stream;  // null: every layer is in w.layers

  // Decoder layer i, ready to compute: from w.layers, or read through the layer cache (then held
  // by the caller for as long as it uses it, whatever the cache evicts meanwhile).
  std::shared_ptr<const model::LayerWeights> layer_weights(int64_t i) const {
    if (stream) return stream->get(i);
    return std::shared_ptr<const model::LayerWeights>(std::shared_ptr<void>(), &w.layers[size_t(i)]);  // not owned
  }

  // Working buffers, grown on demand (guarded by mu).
  struct Rows {
    int64_t seq, pos;
  };
  mutable std::vector<float> x, h, qkv, attn, tmp, gu, scratch;
  mutable std::vector<Rows> rows;

  // capture (may be null): the residual stream after each layer, [layers][rows][hidden].
  void forward(KvCache& c, const std::vector<std::vector<int32_t>>& tokens, bool all, std::vector<float>& out,
               std::vector<float>* capture = nullptr) const;
  // rows = positions 0..t-1 of sequence 0; working buffers grown for t rows.
  void prepare_rows(int64_t t) const;
  void check_same_shape(const Impl& other) const;
  void embed(int64_t row, int32_t id) const;
  void attention_block(const model::LayerWeights& l, int64_t layer, KvCache& c, int64_t m) const;
  void mlp_block(const model::LayerWeights& l, int64_t m) const;
  // fn(task, thread) for tasks [0, n): over the pool when the work (in floats touched) is worth a
  // parallel region's wake-up and join (~64 K floats), else inline on the calling thread.
  template <class F>
  void for_tasks(int64_t n, int64_t work, F&& fn) const {
    if (n == 1 || double(work) < double(1 << 16) * serial_scale) {
      for (int64_t t = 0; t < n; ++t) fn(t, 0);
      return;
    }
    pool->run(n, fn);
  }
  template <class F>
  void for_rows(int64_t m, int64_t per_row, F&& fn) const {
    for_tasks(m, m * per_row, [&](int64_t r, int) { fn(r); });
  }
};

namespace {
template <class T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}
}  // namespace

void KvCache::clear() { std::fill(len_.begin(), len_.end(), 0); }

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& dir, const ModelOptions& options) {
  namespace fs = std::filesystem;
  refuse_gguf_without_magic(dir);
  const bool gguf = is_gguf_file(dir);
  if (!gguf && !fs::is_directory(dir)) throw Error(dir + ": no such model directory or GGUF file");
  auto impl = std::make_unique<Impl>();
  std::unique_ptr<GgufFile> file;
  if (gguf) {  // config from the metadata, through the same parser as config.json
    file = std::make_unique<GgufFile>(dir);
    impl->cfg = model_config_from_gguf(*file);
  } else {
    const std::string cfg_path = (fs::path(dir) / "config.json").string();
    if (!fs::exists(cfg_path)) throw Error(cfg_path + ": missing (a model directory needs its config.json)");
    impl->cfg = parse_model_config(read_json_file(cfg_path), cfg_path);
  }
  impl->path = options.path;
  impl->serial_scale = options.serial_threshold_scale;
  impl->kv_dtype = options.kv_cache;
  std::string why;
  if (!kernels::path_available(impl->path, &why))
    throw Error(std::string("path ") + kernels::path_name(impl->path) + ": " + why);
  impl->w = gguf ? model::load_gguf_weights(std::move(file), impl->cfg, /*with_layers=*/!options.layer_cache)
                 : model::load_weights(dir, impl->cfg, /*with_layers=*/!options.layer_cache);
  if (options.layer_cache)
    impl->stream = std::make_unique<LayerStream>(options.layer_cache, impl->w, impl->cfg, options.prefetch);
  impl->rope = kernels::make_rope_table(
      rope_inv_freq(impl->cfg.head_dim, impl->cfg.rope_theta, impl->cfg.rope_scaling), impl->cfg.max_positions);
  impl->pool = std::make_unique<ThreadPool>(options.threads);
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const ModelConfig& Model::config() const { return impl_->cfg; }
int Model::threads() const { return impl_->pool->size(); }
void Model::set_threads(int threads) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->pool = std::make_unique<ThreadPool>(threads);
}
kernels::Path Model::path() const { return impl_->path; }
bool Model::quantized() const { return impl_->w.quantized; }
const std::vector<std::string>& Model::load_notes() const { return impl_->w.notes; }

KvCache Model::new_cache(int64_t batch, int64_t capacity) const {
  const ModelConfig& c = impl_->cfg;
  if (batch < 1) throw Error("a KV cache needs at least one sequence");
  if (capacity < 1 || capacity > c.max_positions)
    throw Error("a KV cache of " + std::to_string(capacity) + " positions: the model allows 1 to " +
                std::to_string(c.max_positions) + " (max_position_embeddings)");
  KvCache kv;
  kv.batch_ = batch;
  kv.capacity_ = capacity;
  kv.len_.assign(size_t(batch), 0);
  kv.f16_ = impl_->kv_f16();
  for (int64_t l = 0; l < c.layers; ++l) impl_->size_kv_layer(kv, l);
  return kv;
}

void Model::Impl::size_kv_layer(KvCache& c, int64_t layer) const {
  const size_t n = size_t(c.batch_) * size_t(cfg.kv_heads) * size_t(c.capacity_) * size_t(cfg.head_dim);
  if (c.f16_) {
    c.k16_.resize(size_t(cfg.layers));
    c.v16_.resize(size_t(cfg.layers));
    c.k16_[size_t(layer)].resize(n);
    c.v16_[size_t(layer)].resize(n);
  } else {
    c.k_.resize(size_t(cfg.layers));
    c.v_.resize(size_t(cfg.layers));
    c.k_[size_t(layer)].resize(n);
    c.v_[size_t(layer)].resize(n);
  }
}

void Model::forward(KvCache& cache, const std::vector<std::vector<int32_t>>& tokens, bool all_positions,
                    std::vector<float>& logits) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->forward(cache, tokens, all_positions, logits);
}

std::vector<float> Model::prompt_logits(std::span<const int32_t> ids) const {
  if (ids.empty()) throw Error("an empty prompt has no logits");
  KvCache c = new_cache(1, int64_t(ids.size()));
  std::vector<float> out;
  forward(c, {std::vector<int32_t>(ids.begin(), ids.end())}, true, out);
  return out;
}

std::vector<float> Model::layer_outputs(std::span<const int32_t> ids) const {
  if (ids.empty()) throw Error("an empty prompt has no hidden states");
  KvCache c = new_cache(1, int64_t(ids.size()));
  std::vector<float> logits, out;
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->forward(c, {std::vector<int32_t>(ids.begin(), ids.end())}, false, logits, &out);
  return out;
}

void Model::Impl::prepare_rows(int64_t t) const {
  if (t < 1 || t > cfg.max_positions)
    throw Error("hidden states of " + std::to_string(t) + " positions: the model allows 1 to " +
                std::to_string(cfg.max_positions) + " (max_position_embeddings)");
  rows.clear();
  for (int64_t i = 0; i < t; ++i) rows.push_back({0, i});
  const int64_t H = cfg.hidden, nq = cfg.heads * cfg.head_dim, I = cfg.intermediate;
  const int64_t qkv_n = nq + 2 * cfg.kv_heads * cfg.head_dim;
  const size_t mm = size_t(t);
  grow(x, mm * size_t(H));
  grow(h, mm * size_t(H));
  grow(qkv, mm * size_t(qkv_n));
  grow(attn, mm * size_t(nq));
  grow(gu, mm * size_t(2 * I));
  grow(tmp, mm * size_t(std::max({H, qkv_n, 2 * I, nq})) * 2);
}

void Model::Impl::check_same_shape(const Impl& o) const {
  const ModelConfig& a = cfg;
  const ModelConfig& b = o.cfg;
  if (a.hidden != b.hidden || a.intermediate != b.intermediate || a.layers != b.layers || a.heads != b.heads ||
      a.kv_heads != b.kv_heads || a.head_dim != b.head_dim || a.qk_norm != b.qk_norm || a.qkv_bias != b.qkv_bias ||
      a.o_bias != b.o_bias || a.mlp_bias != b.mlp_bias)
    throw Error("run_layer: the model lending a block has another shape (hidden " + std::to_string(b.hidden) +
                ", intermediate " + std::to_string(b.intermediate) + ", layers " + std::to_string(b.layers) +
                ", heads " + std::to_string(b.heads) + "/" + std::to_string(b.kv_heads) + " vs hidden " +
                std::to_string(a.hidden) + ", intermediate " + std::to_string(a.intermediate) + ", layers " +
                std::to_string(a.layers) + ", heads " + std::to_string(a.heads) + "/" + std::to_string(a.kv_heads) + ")");
}

std::vector<float> Model::embed(std::span<const int32_t> ids) const {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  for (int32_t id : ids)
    if (id < 0 || id >= m.cfg.vocab)
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(m.cfg.vocab) + ")");
  m.prepare_rows(int64_t(ids.size()));
  for (size_t r = 0; r < ids.size(); ++r) m.embed(int64_t(r), ids[r]);
  return std::vector<float>(m.x.begin(), m.x.begin() + std::ptrdiff_t(ids.size() * size_t(m.cfg.hidden)));
}

void Model::run_layer(int64_t layer, std::vector<float>& x, const Model* attn_from, const Model* mlp_from) const {
  Impl& m = *impl_;
  const int64_t H = m.cfg.hidden;
  if (layer < 0 || layer >= m.cfg.layers)
    throw Error("run_layer: layer " + std::to_string(layer) + " outside [0, " + std::to_string(m.cfg.layers) + ")");
  if (x.empty() || x.size() % size_t(H) != 0)
    throw Error("run_layer: " + std::to_string(x.size()) + " values are not rows of hidden " + std::to_string(H));
  const Impl& a = attn_from ? *attn_from->impl_ : m;
  const Impl& f = mlp_from ? *mlp_from->impl_ : m;
  m.check_same_shape(a);
  m.check_same_shape(f);
  const int64_t t = int64_t(x.size()) / H;
  std::lock_guard<std::mutex> lock(m.mu);
  m.prepare_rows(t);
  std::copy(x.begin(), x.end(), m.x.begin());
  // A cache holding only this layer's keys and values (the block reads and writes no other).
  KvCache c;
  c.batch_ = 1;
  c.capacity_ = t;
  c.len_.assign(1, 0);
  c.f16_ = m.kv_f16();
  m.size_kv_layer(c, layer);
  const std::shared_ptr<const model::LayerWeights> attn = a.layer_weights(layer), mlp = f.layer_weights(layer);
  m.attention_block(*attn, layer, c, t);
  m.mlp_block(*mlp, t);
  std::copy(m.x.begin(), m.x.begin() + std::ptrdiff_t(x.size()), x.begin());
}

std::vector<float> Model::logits_of(std::span<const float> x) const {
  Impl& m = *impl_;
  const int64_t H = m.cfg.hidden;
  if (x.empty() || x.size() % size_t(H) != 0)
    throw Error("logits_of: " + std::to_string(x.size()) + " values are not rows of hidden " + std::to_string(H));
  const int64_t t = int64_t(x.size()) / H;
  std::lock_guard<std::mutex> lock(m.mu);
  m.prepare_rows(t);
  for (int64_t r = 0; r < t; ++r)
    kernels::rms_norm(x.data() + r * H, m.w.final_norm.data(), H, float(m.cfg.rms_eps), m.h.data() + r * H);
  std::vector<float> out(size_t(t) * size_t(m.cfg.vocab));
  m.w.lm_head.apply(m.h.data(), t, out.data(), m.path, *m.pool, m.serial_scale);
  return out;
}

void Model::Impl::embed(int64_t row, int32_t id) const {
  w.embed.row(id, cfg.hidden, x.data() + row * cfg.hidden);
}

void Model::Impl::attention_block(const model::LayerWeights& l, int64_t layer, KvCache& c, int64_t m) const {
  const int64_t H = cfg.hidden, hd = cfg.head_dim, nq = cfg.heads * hd, nkv = cfg.kv_heads * hd;
  const int64_t qkv_n = nq + 2 * nkv, group = cfg.heads / cfg.kv_heads, cap = c.capacity_;
  for_rows(m, H, [&](int64_t r) { kernels::rms_norm(x.data() + r * H, l.attn_norm.data(), H, float(cfg.rms_eps), h.data() + r * H); });
  l.qkv.apply(h.data(), m, qkv.data(), tmp.data(), path, *pool, serial_scale);
  const bool f16 = c.f16_;
  float* kc = f16 ? nullptr : c.k_[size_t(layer)].data();
  float* vc = f16 ? nullptr : c.v_[size_t(layer)].data();
  uint16_t* kh = f16 ? c.k16_[size_t(layer)].data() : nullptr;
  uint16_t* vh = f16 ? c.v16_[size_t(layer)].data() : nullptr;
  // Per row: q/k norms (Qwen3), RoPE at the row's position, K and V into the cache.
  for_rows(m, qkv_n, [&](int64_t r) {
    float* q = qkv.data() + r * qkv_n;
    float* k = q + nq;
    const float* v = k + nkv;
    const int64_t seq = rows[size_t(r)].seq, pos = rows[size_t(r)].pos;
    if (cfg.qk_norm) {
      for (int64_t i = 0; i < cfg.heads; ++i) kernels::rms_norm(q + i * hd, l.q_norm.data(), hd, float(cfg.rms_eps), q + i * hd);
      for (int64_t i = 0; i < cfg.kv_heads; ++i) kernels::rms_norm(k + i * hd, l.k_norm.data(), hd, float(cfg.rms_eps), k + i * hd);
    }
    kernels::rope(q, cfg.heads, hd, rope.cos(pos), rope.sin(pos));
    kernels::rope(k, cfg.kv_heads, hd, rope.cos(pos), rope.sin(pos));
    for (int64_t j = 0; j < cfg.kv_heads; ++j) {
      const size_t at = ((size_t(seq) * size_t(cfg.kv_heads) + size_t(j)) * size_t(cap) + size_t(pos)) * size_t(hd);
      if (f16) {
        kernels::kv_to_f16(k + j * hd, hd, kh + at);
        kernels::kv_to_f16(v + j * hd, hd, vh + at);
      } else {
        std::copy(k + j * hd, k + (j + 1) * hd, kc + at);
        std::copy(v + j * hd, v + (j + 1) * hd, vc + at);
      }
    }
  });
  // Attention: one task per (row, KV head), the query heads of its group together.
  const float scale = 1.0f / std::sqrt(float(hd));
  const size_t per_thread = size_t(group) * size_t(cap);
  float* scr = grow(scratch, per_thread * size_t(pool->size()));
  auto task = [&](int64_t t, int thread) {
    const int64_t r = t / cfg.kv_heads, j = t % cfg.kv_heads;
    const int64_t seq = rows[size_t(r)].seq, pos = rows[size_t(r)].pos;
    const int64_t first = cfg.sliding_window > 0 ? std::max<int64_t>(0, pos + 1 - cfg.sliding_window) : 0;
    const size_t at = ((size_t(seq) * size_t(cfg.kv_heads) + size_t(j)) * size_t(cap) + size_t(first)) * size_t(hd);
    const float* q = qkv.data() + r * qkv_n + j * group * hd;
    float* o = attn.data() + r * nq + j * group * hd;
    float* s = scr + size_t(thread) * per_thread;
    if (f16)
      kernels::attention_f16(q, group, hd, kh + at, vh + at, hd, pos + 1 - first, scale, o, s);
    else
      kernels::attention(q, group, hd, kc + at, vc + at, hd, pos + 1 - first, scale, o, s);
  };
  int64_t keys = 0;
  for (const auto& row : rows) keys += row.pos + 1;
  for_tasks(m * cfg.kv_heads, keys * 2 * nq, task);
  l.o.apply(attn.data(), m, tmp.data() + 0, tmp.data() + m * H, path, *pool, serial_scale);
  for (int64_t i = 0; i < m * H; ++i) x[size_t(i)] += tmp[size_t(i)];
}

void Model::Impl::mlp_block(const model::LayerWeights& l, int64_t m) const {
  const int64_t H = cfg.hidden, I = cfg.intermediate;
  for_rows(m, H, [&](int64_t r) { kernels::rms_norm(x.data() + r * H, l.mlp_norm.data(), H, float(cfg.rms_eps), h.data() + r * H); });
  l.gate_up.apply(h.data(), m, gu.data(), tmp.data(), path, *pool, serial_scale);
  // silu(gate)·up into the first I columns of each row of gu.
  for_rows(m, 3 * I, [&](int64_t r) { kernels::silu_mul(gu.data() + r * 2 * I, gu.data() + r * 2 * I + I, I, gu.data() + r * 2 * I); });
  // down reads rows of stride 2I: compact them first (the kernels take x row-major [m][k]).
  for (int64_t r = 1; r < m; ++r) std::copy(gu.data() + r * 2 * I, gu.data() + r * 2 * I + I, gu.data() + r * I);
  l.down.apply(gu.data(), m, tmp.data(), tmp.data() + m * H, path, *pool, serial_scale);
  for (int64_t i = 0; i < m * H; ++i) x[size_t(i)] += tmp[size_t(i)];
}

void Model::Impl::forward(KvCache& c, const std::vector<std::vector<int32_t>>& tokens, bool all,
                          std::vector<float>& out, std::vector<float>* capture) const {
  if (int64_t(tokens.size()) != c.batch_)
    throw Error("forward: " + std::to_string(tokens.size()) + " token lists for a cache of " + std::to_string(c.batch_) +
                " sequences");
  const size_t kv_per_layer = size_t(c.batch_) * size_t(cfg.kv_heads) * size_t(c.capacity_) * size_t(cfg.head_dim);
  const size_t kv_layers = c.f16_ ? c.k16_.size() : c.k_.size();
  const size_t kv_first = kv_layers == 0 ? 0 : c.f16_ ? c.k16_[0].size() : c.k_[0].size();
  if (c.f16_ != kv_f16() || kv_layers != size_t(cfg.layers) || (cfg.layers > 0 && kv_first != kv_per_layer))
    throw Error("forward: the KV cache was not made by this model");
  rows.clear();
  for (int64_t b = 0; b < c.batch_; ++b) {
    const auto& seq = tokens[size_t(b)];
    if (c.len_[size_t(b)] + int64_t(seq.size()) > c.capacity_)
      throw Error("sequence " + std::to_string(b) + ": " + std::to_string(c.len_[size_t(b)] + int64_t(seq.size())) +
                  " tokens exceed the context of " + std::to_string(c.capacity_));
    for (size_t t = 0; t < seq.size(); ++t) {
      if (seq[t] < 0 || seq[t] >= cfg.vocab)
        throw Error("token id " + std::to_string(seq[t]) + " is outside the vocabulary [0, " + std::to_string(cfg.vocab) + ")");
      rows.push_back({b, c.len_[size_t(b)] + int64_t(t)});
    }
  }
  const int64_t m = int64_t(rows.size());
  out.clear();
  if (m == 0) return;
  const int64_t H = cfg.hidden, nq = cfg.heads * cfg.head_dim, I = cfg.intermediate;
  const int64_t qkv_n = nq + 2 * cfg.kv_heads * cfg.head_dim;
  const size_t mm = size_t(m);
  grow(x, mm * size_t(H));
  grow(h, mm * size_t(H));
  grow(qkv, mm * size_t(qkv_n));
  grow(attn, mm * size_t(nq));
  grow(gu, mm * size_t(2 * I));
  grow(tmp, mm * size_t(std::max({H, qkv_n, 2 * I, nq})) * 2);
  size_t r = 0;
  for (const auto& seq : tokens)
    for (int32_t id : seq) embed(int64_t(r++), id);
  for (int64_t layer = 0; layer < cfg.layers; ++layer) {
    const std::shared_ptr<const model::LayerWeights> held = layer_weights(layer);
    const model::LayerWeights& l = *held;
    attention_block(l, layer, c, m);
    mlp_block(l, m);
    if (capture) capture->insert(capture->end(), x.begin(), x.begin() + std::ptrdiff_t(mm * size_t(H)));
  }
  // Rows whose logits are wanted: all, or the last new row of each advancing sequence.
  std::vector<int64_t> pick;
  for (int64_t i = 0; i < m; ++i)
    if (all || i + 1 == m || rows[size_t(i + 1)].seq != rows[size_t(i)].seq) pick.push_back(i);
  for (size_t i = 0; i < pick.size(); ++i)
    kernels::rms_norm(x.data() + pick[i] * H, w.final_norm.data(), H, float(cfg.rms_eps), h.data() + int64_t(i) * H);
  out.resize(pick.size() * size_t(cfg.vocab));
  w.lm_head.apply(h.data(), int64_t(pick.size()), out.data(), path, *pool, serial_scale);
  for (int64_t b = 0; b < c.batch_; ++b) c.len_[size_t(b)] += int64_t(tokens[size_t(b)].size());
}

}  // namespace awq
