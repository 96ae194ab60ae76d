// Scale-search candidates on the int16 kernels (trial_gemm.h).
#include "quant/trial_gemm.h"

#include "awq/thread_pool.h"

namespace awq::quant_detail {

bool trial_gemm_usable(const QParams& q, int64_t k, int64_t group_size) {
  return q.bits == 4 && group_size > 0 && k % group_size == 0;
}

kernels::PackedLinear pack_trial(const LayerTensors& L, const std::vector<int>& lins, const float* s, int64_t gs, const QParams& q,
                                 ThreadPool& pool) {
  const int64_t k = L.k[size_t(lins[0])], ng = k / gs;
  QuantLinear ql;
  ql.name = "scale-search trial";
  ql.format = "awq";
  ql.k = k;
  ql.bits = 4;
  ql.group_size = gs;
  ql.n_groups = ng;
  for (int i : lins) ql.n += L.n[size_t(i)];
  ql.codes.resize(size_t(ql.n * k));
  ql.scales.resize(size_t(ql.n * ng));
  ql.zeros.resize(size_t(ql.n * ng));
  std::vector<const float*> row_src(size_t(ql.n));
  for (int64_t r = 0; int i : lins)
    for (int64_t j = 0; j < L.n[size_t(i)]; ++j) row_src[size_t(r++)] = L.w[size_t(i)].data() + j * k;
  pool.run(ql.n, [&](int64_t r, int) {
    std::vector<float> buf(static_cast<size_t>(gs));
    const float* w = row_src[size_t(r)];
    for (int64_t g = 0; g < ng; ++g) {
      for (int64_t c = 0; c < gs; ++c) buf[size_t(c)] = w[g * gs + c] * (s ? s[g * gs + c] : 1.0f);
      const GroupQ gq = quantize_group(buf.data(), gs, q, 1, 1, ql.codes.data() + r * k + g * gs);
      ql.scales[size_t(r * ng + g)] = gq.scale;
      ql.zeros[size_t(r * ng + g)] = gq.zero;
    }
  });
  if (s) {
    ql.pqs_dtype = DType::F32;
    ql.pre_quant_scale.resize(size_t(k));
    for (int64_t c = 0; c < k; ++c) ql.pre_quant_scale[size_t(c)] = 1.0f / s[c];
  }
  return kernels::repack(ql);
}

void self_attention_trial(const ModelConfig& cfg, const LayerTensors& L, const float* s, int64_t gs, const QParams& q, const float* a,
                          int64_t blocks, int64_t len, float* o_in, float* out, ThreadPool& pool, std::vector<float>& qkv,
                          AttnBuffers* buf) {
  const kernels::PackedLinear w = pack_trial(L, {0, 1, 2}, s, gs, q, pool);
  self_attention_trial(cfg, L, w, DenseWeight(L.w[3].data(), cfg.hidden, cfg.heads * cfg.head_dim, pool), a, blocks, len, o_in, out, pool,
                       qkv, buf);
}

void self_attention_trial(const ModelConfig& cfg, const LayerTensors& L, const kernels::PackedLinear& w, const DenseWeight& wo,
                          const float* a, int64_t blocks, int64_t len, float* o_in, float* out, ThreadPool& pool, std::vector<float>& qkv,
                          AttnBuffers* buf) {
  const int64_t T = blocks * len, qd = cfg.heads * cfg.head_dim, kd = cfg.kv_heads * cfg.head_dim, N = qd + 2 * kd;
  if (qkv.size() < size_t(T * N)) qkv.resize(size_t(T * N));
  kernels::gemm(w, a, DType::F32, T, qkv.data(), DType::F32, {kernels::Path::kInt16, &pool});
  attend(cfg, L, {qkv.data(), N, qkv.data() + qd, N, qkv.data() + qd + kd, N}, true, blocks, len, wo, o_in, out, pool, buf);
}

}  // namespace awq::quant_detail
