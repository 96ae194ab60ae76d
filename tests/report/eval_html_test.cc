// The eval HTML page rendered in headless Chromium: both charts must draw. The model is the
// AutoAWQ tiny model with layer 1's down_proj scales tripled against its own f32 dequantization, so
// the divergence curve has non-zero points and the KLD histogram non-empty bins. The line chart
// (above) draws its second series in red (on this 2-layer model it covers the blue one: both
// errors are equal); the KLD bar chart (below it) only in blue, so blue pixels below the last red
// row prove the bars drew.
#include <gtest/gtest.h>

#include "awq/eval.h"
#include "awq/eval_report.h"
#include "awq/fsutil.h"
#include "awq/model.h"
#include "check/checkpoint_util.h"
#include "eval/eval_test_util.h"
#include "report/browser_util.h"
#include "test_util.h"

namespace awq {
namespace {

// Pixels within 8 of (r, g, b) in rows [y0, y1).
size_t count_rows(const test::Image& img, int y0, int y1, uint8_t r, uint8_t g, uint8_t b) {
  size_t n = 0;
  for (int y = std::max(y0, 0); y < std::min(y1, img.height); ++y)
    for (int x = 0; x < img.width; ++x) {
      const uint8_t* p = &img.rgb[3 * (size_t(y) * size_t(img.width) + size_t(x))];
      if (std::abs(p[0] - r) <= 8 && std::abs(p[1] - g) <= 8 && std::abs(p[2] - b) <= 8) ++n;
    }
  return n;
}

TEST(EvalHtml, ChartsDrawInChromium) {
  const auto chromium = test::find_chromium();
  if (!chromium) GTEST_SKIP() << "no Chromium installed (scripts/install-deps.sh installs Debian's chromium)";
  test::TempDir tmp;
  const std::string model = test::data_path("models/llama-awq-gemm-g32");
  test::dense_reference(model, tmp / "ref");
  test::Checkpoint ck("models/llama-awq-gemm-g32");
  test::multiply_scales(ck.file("model.safetensors"), "model.layers.1.mlp.down_proj", 3);
  auto q = Model::load(ck.dir(), {.threads = 2}), ref = Model::load(tmp / "ref", {.threads = 2});
  std::vector<int32_t> ids;
  for (int i = 0; i < 160; ++i) ids.push_back(int32_t((i * 73 + 5) % q->config().vocab));
  EvalOptions opt;
  opt.ctx = 64;
  const EvalResult r = evaluate(*q, ref.get(), ids, opt);
  ASSERT_EQ(r.first_divergent_layer, 1);
  write_file_atomic(tmp / "e.html", render_eval_html(r, {ck.dir(), tmp / "ref", "(token ids)", false}));
  const test::Image img = test::screenshot(*chromium, tmp / "e.html", tmp / "e.png", 1000, 2400);
  int red_top = img.height, red_bottom = -1;
  for (int y = 0; y < img.height; ++y)
    if (count_rows(img, y, y + 1, 0xd0, 0x4a, 0x4a) > 0) red_top = std::min(red_top, y), red_bottom = y;
  ASSERT_GE(red_bottom, 0) << "the divergence curve's red series did not draw";
  EXPECT_GT(count_rows(img, red_top, red_bottom + 1, 0xd0, 0x4a, 0x4a), 50u) << "the red series is a line, not a dot";
  EXPECT_GT(red_bottom - red_top, 100) << "the curve climbs from layer 0 (rounding) to layer 1 (damaged)";
  EXPECT_GT(count_rows(img, red_bottom + 1, img.height, 0x4a, 0x7b, 0xd0), 200u) << "the KLD histogram's bars did not draw";
}

}  // namespace
}  // namespace awq
