// Perplexity of a model directory on a text (measurement helper for BENCHMARKS.md, not a test):
//   awq_perplexity MODEL TEXT [WINDOW=512] [MAX_WINDOWS=0]
// The text is tokenized with MODEL's tokenizer (or TOKENIZER_DIR given as a 5th argument), cut into
// non-overlapping windows of WINDOW tokens (remainder dropped); PPL = exp(mean NLL of every
// position but the first of each window), from the runtime's f32 forward (awq::Model).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "awq/model.h"
#include "awq/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: awq_perplexity MODEL TEXT [WINDOW] [MAX_WINDOWS] [TOKENIZER_DIR]\n");
    return 2;
  }
  const int64_t window = argc > 3 ? std::stoll(argv[3]) : 512, max_windows = argc > 4 ? std::stoll(argv[4]) : 0;
  std::ifstream f(argv[2], std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const auto tok = awq::load_tokenizer(argc > 5 ? argv[5] : argv[1]);
  const std::vector<int32_t> ids = tok->encode(ss.str());
  const auto model = awq::Model::load(argv[1]);
  const int64_t vocab = model->config().vocab;
  double nll = 0;
  int64_t count = 0, windows = 0;
  for (size_t s = 0; s + size_t(window) <= ids.size(); s += size_t(window)) {
    if (max_windows > 0 && windows >= max_windows) break;
    const std::vector<int32_t> w(ids.begin() + long(s), ids.begin() + long(s) + window);
    const std::vector<float> logits = model->prompt_logits(w);
    for (int64_t t = 0; t + 1 < window; ++t) {
      const float* l = logits.data() + t * vocab;
      double mx = l[0];
      for (int64_t v = 1; v < vocab; ++v) mx = std::max(mx, double(l[v]));
      double z = 0;
      for (int64_t v = 0; v < vocab; ++v) z += std::exp(double(l[v]) - mx);
      nll += (mx + std::log(z)) - double(l[w[size_t(t + 1)]]);
      ++count;
    }
    ++windows;
  }
  std::printf("%s: %lld windows of %lld tokens, ppl %.4f\n", argv[1], (long long)windows, (long long)window, std::exp(nll / double(count)));
  return 0;
}
