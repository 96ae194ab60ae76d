// Hugging Face's sliding-window perplexity windows (see include/awq/eval.h).
#include <algorithm>
#include <string>

#include "awq/error.h"
#include "awq/eval.h"

namespace awq {

std::vector<EvalWindow> eval_windows(int64_t n, int64_t ctx, int64_t stride) {
  if (ctx < 2) throw Error("--ctx " + std::to_string(ctx) + ": a window needs at least 2 tokens");
  if (stride < 1 || stride > ctx)
    throw Error("--stride " + std::to_string(stride) + ": must be in [1, ctx = " + std::to_string(ctx) + "]");
  if (n < 2) throw Error("the text encodes to " + std::to_string(n) + " token(s): perplexity needs at least 2");
  std::vector<EvalWindow> out;
  int64_t prev_end = 0;
  for (int64_t begin = 0; begin < n; begin += stride) {
    const int64_t end = std::min(begin + ctx, n);
    const int64_t first = std::max(prev_end, begin + 1);
    if (first < end) out.push_back({begin, end, first});
    prev_end = end;
    if (end == n) break;
  }
  return out;
}

}  // namespace awq
