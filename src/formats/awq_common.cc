#include "formats/awq_common.h"

#include "formats/common.h"

namespace awq {

int64_t awq_zeros_width(int64_t k, int64_t g) {
  if (g <= 0 || k <= 0) return 0;
  int64_t mult;
  if (g >= 128) mult = 1;
  else if (g == 64) mult = 2;
  else if (g == 32) mult = 4;
  else return 0;
  const int64_t base = ((k / g) + 7) / 8;
  return (base + mult - 1) / mult * mult;
}

namespace fmt_detail {

int64_t infer_padded_group_size(const ModelDir& dir, bool transposed) {
  const auto mods = modules_with_suffix(dir, ".qweight");
  if (mods.empty()) return 128;
  const TensorView* qw = dir.find(mods[0] + ".qweight");
  const TensorView* sc = dir.find(mods[0] + ".scales");
  if (!qw || !sc || qw->shape.size() != 2 || sc->shape.size() != 2 || !is_float(sc->dtype) || sc->dtype == DType::F64)
    return 128;
  const int64_t k = transposed ? qw->dim(1) : qw->dim(1) * 8;
  const int64_t width = transposed ? sc->dim(0) : sc->dim(1);
  for (int64_t g : {128, 64, 32}) {
    if (k % g != 0 || awq_zeros_width(k, g) * 8 != width) continue;
    const int64_t used = k / g;
    // first output row / column: the last real group is non-zero, the padding is zero
    auto at = [&](int64_t grp) {
      return load_float(sc->data, sc->dtype, size_t(transposed ? grp * sc->dim(1) : grp));
    };
    bool ok = at(used - 1) != 0.0f;
    for (int64_t p = used; p < width && ok; ++p) ok = at(p) == 0.0f;
    if (ok) return g;
  }
  return 128;
}

}  // namespace fmt_detail
}  // namespace awq
