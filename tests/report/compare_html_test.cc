// The compare HTML page rendered in headless Chromium: the weight-error chart must draw (bar
// pixels in the chart colours: blue for layers over the bar, red for the flagged one).
#include <gtest/gtest.h>

#include <cstring>

#include "awq/compare.h"
#include "awq/compare_report.h"
#include "awq/dequantize_model.h"
#include "awq/fsutil.h"
#include "check/checkpoint_util.h"
#include "eval/eval_test_util.h"
#include "report/browser_util.h"
#include "test_util.h"

namespace awq {
namespace {

TEST(CompareHtml, ChartsDrawInChromium) {
  const auto chromium = test::find_chromium();
  if (!chromium) GTEST_SKIP() << "no Chromium installed (scripts/install-deps.sh installs Debian's chromium)";
  test::TempDir tmp;
  const std::string model = test::data_path("tiny-llama-awq");
  test::dense_reference(model, tmp / "ref");
  // Damage one module (scales x 3, then negated: cosine -1, far below the bar) so a red bar exists.
  test::Checkpoint ck("tiny-llama-awq");
  ck.edit_tensors([](std::vector<test::EditTensor>& ts) {
    for (auto& t : ts)
      if (t.name == "model.layers.1.mlp.down_proj.scales")
        for (size_t i = 0; i + 1 < t.bytes.size(); i += 2) {
          uint16_t h;
          std::memcpy(&h, &t.bytes[i], 2);
          h = f32_to_f16(-3 * f16_to_f32(h));
          std::memcpy(&t.bytes[i], &h, 2);
        }
  });
  const CompareResult r = compare_weights(tmp / "ref", ck.dir());
  ASSERT_TRUE(r.layers[0].below_bar);
  write_file_atomic(tmp / "r.html", render_compare_html(r));
  const test::Image img = test::screenshot(*chromium, tmp / "r.html", tmp / "r.png", 1000, 800);
  EXPECT_GT(test::count_colour(img, 0xd0, 0x4a, 0x4a), 200u) << "the flagged layer's red bar did not draw";
}

}  // namespace
}  // namespace awq
