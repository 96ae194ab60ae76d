// QuantLinear::act_order: the one act-order test (kernels' repack, convert's planning and packing
// and the readers all ask it).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "awq/quant_linear.h"

namespace awq {
namespace {

QuantLinear with_g_idx(int64_t k, int64_t group, std::vector<int32_t> g_idx) {
  QuantLinear q;
  q.k = k;
  q.group_size = group;
  q.g_idx = std::move(g_idx);
  return q;
}

TEST(QuantLinearActOrder, EmptyOrNaturalGIdxIsNotActOrder) {
  EXPECT_FALSE(with_g_idx(8, 4, {}).act_order());
  EXPECT_FALSE(with_g_idx(8, 4, {0, 0, 0, 0, 1, 1, 1, 1}).act_order());
  EXPECT_FALSE(with_g_idx(6, 4, {0, 0, 0, 0, 1, 1}).act_order());  // ragged last group
  EXPECT_FALSE(with_g_idx(4, 4, {0, 0, 0, 0}).act_order());        // per-channel: group_size == k
}

TEST(QuantLinearActOrder, AnyColumnOutOfNaturalGroupIsActOrder) {
  EXPECT_TRUE(with_g_idx(8, 4, {1, 0, 0, 0, 1, 1, 1, 0}).act_order());
  EXPECT_TRUE(with_g_idx(8, 4, {0, 0, 0, 0, 1, 1, 1, 0}).act_order());  // only the last column
  EXPECT_TRUE(with_g_idx(8, 4, {0, 0, 0, 0, 0, 0, 0, 0}).act_order());  // in range, wrong grouping
}

TEST(QuantLinearActOrder, StoredIntegersOfAnyWidth) {
  EXPECT_FALSE(QuantLinear::is_act_order(std::vector<int64_t>{0, 0, 1, 1}, 2));
  EXPECT_TRUE(QuantLinear::is_act_order(std::vector<int64_t>{0, 1, 0, 1}, 2));
  EXPECT_TRUE(QuantLinear::is_act_order(std::vector<int64_t>{0, 0}, 0));  // no valid group size
}

}  // namespace
}  // namespace awq
