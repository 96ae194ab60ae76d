#include "convert/value_guard.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "awq/error.h"

namespace awq::convert_detail {
namespace {

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

std::string lower_name(DType t) {
  std::string s(dtype_name(t));
  for (auto& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

bool floating(DType t) { return t == DType::F16 || t == DType::BF16 || t == DType::F32; }

CastStats& stats_for(std::vector<CastStats>& v, DType from, DType to) {
  for (auto& s : v)
    if (s.from == from && s.to == to) return s;
  v.push_back({from, to, 0, 0.0, ""});
  return v.back();
}

}  // namespace

std::string role_tensor_name(const FormatReader& r, const std::string& m, const std::string& role) {
  for (const auto& t : r.module_tensors(m)) {
    const std::string leaf = t.substr(std::min(t.size(), m.size()));
    const bool pre = leaf.find("pre") != std::string::npos, zero = leaf.find("zero") != std::string::npos;
    if (role == "scales" && leaf.find("scal") != std::string::npos && !pre && !zero) return t;
    if (role == "scaled zeros" && zero) return t;
    if (role == "pre-quant scales" && pre) return t;
  }
  return m;
}

void guard_nonfinite(NonfinitePolicy& p, const std::string& tensor, const NonfiniteScan& s, const std::string& what) {
  if (!s.any()) return;
  if (!p.allow)
    fail(p.file, tensor,
         s.summary(what) + "; refusing to write NaN/Inf (awq check reports it as `nonfinite`). " + p.remedy);
  p.warnings.push_back("warning: " + tensor + ": " + s.summary(what) + "; carried through (--allow-nonfinite)");
}

void guard_module_nonfinite(NonfinitePolicy& p, const FormatReader& r, const std::string& m, const QuantLinear& q) {
  for (const auto& f : scan_nonfinite(q)) guard_nonfinite(p, role_tensor_name(r, m, f.role), f.scan, f.role);
}

void guard_module_range(const std::string& file, const std::string& m, const QuantLinear& q, DType out) {
  const MagnitudeScan ms = max_abs_dequantized(q);
  if (dtype_holds(ms.max_abs, out)) return;
  fail(file, m,
       "dequantized weights reach |w| = " + fmt(ms.max_abs) + " (first at row " + std::to_string(ms.row) + ", group " +
           std::to_string(ms.group) + "), which " + lower_name(out) + " cannot hold (it would be written as Inf); use --dtype " +
           dtypes_holding(ms.max_abs) + " (awq check reports it as `fp16-overflow`)");
}

OutTensor guarded_copy(const TensorView& t, const std::string& out_name, DType to, std::shared_ptr<NonfinitePolicy> policy,
                       std::shared_ptr<std::vector<CastStats>> stats) {
  const TensorView* src = &t;
  if (!floating(t.dtype)) return copy_of(t, out_name);
  const bool cast = floating(to) && to != t.dtype;
  const DType dt = cast ? to : t.dtype;
  return {{out_name, dt, t.shape}, [src, dt, cast, policy, stats](SafetensorsWriter& w) {
            guard_nonfinite(*policy, src->name, scan_nonfinite(*src), "values");
            if (!cast) {
              w.append(src->data, src->nbytes);
              return;
            }
            const size_t n = size_t(src->numel()), chunk = size_t(1) << 20;
            std::vector<uint8_t> buf;
            double worst = 0, max_abs = 0;
            size_t worst_at = SIZE_MAX;
            for (size_t i0 = 0; i0 < n; i0 += chunk) {
              const size_t i1 = std::min(n, i0 + chunk);
              buf.resize((i1 - i0) * dtype_size(dt));
              for (size_t i = i0; i < i1; ++i) {
                const float v = load_float(src->data, src->dtype, i);
                store_float(buf.data(), dt, i - i0, v);
                if (!std::isfinite(v)) continue;
                const float r = load_float(buf.data(), dt, i - i0);
                max_abs = std::max(max_abs, double(std::fabs(v)));
                if (!std::isfinite(r)) {
                  if (worst_at == SIZE_MAX) worst_at = i;
                  continue;
                }
                if (v != 0) worst = std::max(worst, std::fabs(double(r) - double(v)) / std::fabs(double(v)));
              }
              if (worst_at != SIZE_MAX) {
                NonfiniteScan where;
                where.first = worst_at;
                where.cols = src->shape.size() >= 2 ? src->shape.back() : 0;
                for (size_t i = i1; i < n; ++i) max_abs = std::max(max_abs, double(std::fabs(load_float(src->data, src->dtype, i))));
                fail(policy->file, src->name,
                     std::string(dtype_name(src->dtype)) + " values reach |x| = " + fmt(max_abs) + " (first overflow at " +
                         where.first_position() + "), which " + lower_name(dt) + " cannot hold (they would be written as Inf); use --dtype " +
                         dtypes_holding(max_abs));
              }
              w.append(buf.data(), buf.size());
            }
            CastStats& s = stats_for(*stats, src->dtype, dt);
            ++s.tensors;
            if (s.worst_tensor.empty() || worst > s.max_rel) {
              s.max_rel = worst;
              s.worst_tensor = src->name;
            }
          }};
}

}  // namespace awq::convert_detail
