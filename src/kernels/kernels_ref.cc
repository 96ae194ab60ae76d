// Scalar reference kernels (kept forever). The int8 and bf16 paths and dequantization spell out the
// exact f32 operations the SIMD kernels perform (bit-identical on FMA targets; the bf16 path emulates
// VDPBF16PS lane by lane); the f32 path sums in k order, which the SIMD kernels reorder (see
// include/awq/kernels.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "awq/error.h"
#include "awq/kernels.h"
#include "awq/thread_pool.h"
#include "kernels/internal.h"

namespace awq::kernels {

namespace {

// Code of (row r of tile t, packed column kk) from the layout.
inline int code_at(const PackedLinear& w, int64_t t, int64_t r, int64_t kk) {
  const int64_t chunk = kk / kChunkCols, b = kk % kChunkCols;
  const uint8_t byte = w.codes.data()[size_t(t) * w.tile_code_bytes() + size_t(chunk) * kChunkBytes + size_t(4 * r + (b & 3))];
  return b < 4 ? (byte & 0xF) : (byte >> 4);
}

void check_io(const PackedLinear& w, DType xt, int64_t m, DType yt) {
  if (m < 1) throw Error(w.name + ": gemm needs m >= 1");
  if (xt != DType::F32 && xt != DType::BF16) throw Error(w.name + ": activations must be F32 or BF16");
  if (yt != DType::F32 && yt != DType::BF16) throw Error(w.name + ": outputs must be F32 or BF16");
}

}  // namespace

void gemm_ref(const PackedLinear& w, const void* x, DType xt, int64_t m, void* y, DType yt, Path path,
              ThreadPool* pool) {
  check_io(w, xt, m, yt);
  std::vector<float> xf(size_t(m * w.k_pad));
  pack_activations_f32(w, x, xt, 0, m, xf.data());
  std::vector<int8_t> a, alo;
  std::vector<float> d, ds;
  if (path == Path::kInt8 || path == Path::kInt16) {
    a.resize(xf.size());
    d.resize(size_t(m * w.n_groups));
    ds.resize(d.size());
    if (path == Path::kInt8) {
      quantize_activations_i8(w, xf.data(), 0, m, a.data(), d.data(), ds.data());
    } else {
      alo.resize(xf.size());
      quantize_activations_i16(w, xf.data(), 0, m, a.data(), alo.data(), d.data(), ds.data());
    }
  }
  if (path == Path::kBF16)  // activations rounded once to bf16, as VCVTNEPS2BF16 does
    for (float& v : xf) v = bf16_to_f32(f32_to_bf16_ftz(v));
  // Tiles are independent; a pool (benchmarks) splits them over threads, tests pass none.
  auto tiles = [&](int64_t t0, int64_t t1) {
    std::vector<float> acc(size_t(m * kPackRows));
    std::vector<uint8_t> q(size_t(kPackRows * w.group));
    std::vector<float> wb(path == Path::kBF16 ? q.size() : 0);  // bf16-rounded weights (bf16 path)
    float s[kPackRows], o[kPackRows];
    for (int64_t t = t0; t < t1; ++t) {
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t g = 0; g < w.n_groups; ++g) {
        group_params(w, t, g, s, o);
        for (int64_t r = 0; r < kPackRows; ++r)
          for (int64_t j = 0; j < w.group; ++j) q[size_t(r * w.group + j)] = uint8_t(code_at(w, t, r, g * w.group + j));
        for (size_t i = 0; i < wb.size(); ++i) {
          const size_t r = i / size_t(w.group);
          wb[i] = bf16_to_f32(f32_to_bf16_ftz(std::fma(float(q[i]), s[r], o[r])));
        }
        for (int64_t r = 0; r < kPackRows; ++r) {
          const uint8_t* qr = &q[size_t(r * w.group)];
          for (int64_t mi = 0; mi < m; ++mi) {
            float& a_ = acc[size_t(mi * kPackRows + r)];
            if (path == Path::kF32) {
              const float* xr = &xf[size_t(mi * w.k_pad + g * w.group)];
              for (int64_t j = 0; j < w.group; ++j) a_ = std::fma(xr[j], std::fma(float(qr[j]), s[r], o[r]), a_);
            } else if (path == Path::kBF16) {
              // One VDPBF16PS lane per column pair (G is a multiple of 8, so pairs stay in a group).
              const float* xr = &xf[size_t(mi * w.k_pad + g * w.group)];
              const float* wr = &wb[size_t(r * w.group)];
              for (int64_t j = 0; j < w.group; j += 2) a_ = dpbf16_lane(a_, xr[j], xr[j + 1], wr[j], wr[j + 1]);
            } else {
              const int8_t* ar = &a[size_t(mi * w.k_pad + g * w.group)];
              int32_t dot = 0;
              for (int64_t j = 0; j < w.group; ++j) dot += int32_t(qr[j]) * int32_t(ar[j]);
              float t = float(dot);
              if (path == Path::kInt16) {  // 256·Σq·hi + Σq·lo, combined once in f32
                const int8_t* lr = &alo[size_t(mi * w.k_pad + g * w.group)];
                int32_t dlo = 0;
                for (int64_t j = 0; j < w.group; ++j) dlo += int32_t(qr[j]) * int32_t(lr[j]);
                t = std::fma(float(dot), 256.f, float(dlo));
              }
              const size_t gi = size_t(mi * w.n_groups + g);
              const float sd = s[r] * d[gi];
              a_ = std::fma(sd, t, std::fma(o[r], ds[gi], a_));
            }
          }
        }
      }
      for (int64_t r = 0; r < kPackRows; ++r) {
        const int64_t n = t * kPackRows + r;
        if (n >= w.n) break;
        for (int64_t mi = 0; mi < m; ++mi) {
          float v = acc[size_t(mi * kPackRows + r)];
          if (!w.bias.empty()) v += w.bias[size_t(n)];
          store_float(static_cast<uint8_t*>(y), yt, size_t(mi * w.n + n), v);
        }
      }
    }
  };
  if (!pool) {
    tiles(0, w.n_tiles);
  } else {
    const int64_t tasks = std::min<int64_t>(w.n_tiles, 4 * pool->size());
    pool->run(tasks, [&](int64_t task, int) { tiles(w.n_tiles * task / tasks, w.n_tiles * (task + 1) / tasks); });
  }
}

void dequantize_ref(const PackedLinear& w, DType out, int64_t r0, int64_t r1, void* dst) {
  if (out != DType::F32 && out != DType::BF16 && out != DType::F16)
    throw Error(w.name + ": dequantize output must be F32, BF16 or F16");
  if (r0 < 0 || r1 > w.n || r0 > r1) throw Error(w.name + ": dequantize row range out of bounds");
  float s[kPackRows], o[kPackRows];
  for (int64_t t = r0 / kPackRows; t * kPackRows < r1; ++t) {
    const int64_t n0 = std::max(r0, t * kPackRows), n1 = std::min(r1, (t + 1) * kPackRows);
    for (int64_t g = 0; g < w.n_groups; ++g) {
      group_params(w, t, g, s, o);
      for (int64_t j = 0; j < w.group; ++j) {
        const int64_t col = w.source_column(g, j);  // natural or act-order (scatter)
        if (col < 0) continue;
        const float* pqs = w.pre_quant_scale.empty() ? nullptr : &w.pre_quant_scale[size_t(col)];
        for (int64_t n = n0; n < n1; ++n) {
          const int64_t r = n - t * kPackRows;
          float v = std::fma(float(code_at(w, t, r, g * w.group + j)), s[r], o[r]);
          if (pqs) v *= *pqs;
          store_float(static_cast<uint8_t*>(dst), out, size_t((n - r0) * w.k + col), v);
        }
      }
    }
  }
}

namespace {

// Act-order dequantize: the reference, one tile's rows per task. (The SIMD dequantizer writes each
// packed group to a contiguous column range, i.e. natural order only.)
void dequantize_scatter(const PackedLinear& w, DType out, int64_t r0, int64_t r1, void* dst, ThreadPool& pool) {
  const int64_t t0 = r0 / kPackRows, t1 = (r1 + kPackRows - 1) / kPackRows;
  const size_t row_bytes = size_t(w.k) * dtype_size(out);
  pool.run(r0 < r1 ? t1 - t0 : 0, [&](int64_t task, int) {
    const int64_t t = t0 + task;
    const int64_t n0 = std::max(r0, t * kPackRows), n1 = std::min(r1, (t + 1) * kPackRows);
    dequantize_ref(w, out, n0, n1, static_cast<uint8_t*>(dst) + size_t(n0 - r0) * row_bytes);
  });
}

}  // namespace

void gemm(const PackedLinear& w, const void* x, DType xt, int64_t m, void* y, DType yt, const GemmOptions& opt) {
  check_io(w, xt, m, yt);
  if (opt.path == Path::kBF16) {
    std::string why;
    if (!path_available(Path::kBF16, &why))
      throw Error(w.name + ": the bf16 path (AVX-512 BF16) cannot run here: " + why + "; use the f32 or int8 path");
    gemm_bf16(w, x, xt, m, y, yt, opt.pool ? *opt.pool : default_pool());
    return;
  }
  gemm_simd(w, x, xt, m, y, yt, opt.path, opt.pool ? *opt.pool : default_pool());
}

void dequantize(const PackedLinear& w, DType out, int64_t r0, int64_t r1, void* dst, ThreadPool* pool) {
  if (out != DType::F32 && out != DType::BF16 && out != DType::F16)
    throw Error(w.name + ": dequantize output must be F32, BF16 or F16");
  if (r0 < 0 || r1 > w.n || r0 > r1) throw Error(w.name + ": dequantize row range out of bounds");
  ThreadPool& p = pool ? *pool : default_pool();
  if (!w.source_col.empty()) return dequantize_scatter(w, out, r0, r1, dst, p);
  dequantize_simd(w, out, r0, r1, dst, p);
}

}  // namespace awq::kernels
