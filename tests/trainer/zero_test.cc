// The ZeRO-1 shard arithmetic of trainer/zero.h.
#include "trainer/zero.h"

#include <vector>

#include "gtest/gtest.h"

namespace isoflop::trainer {
namespace {

TEST(ZeroLayout, PadsToAMultipleOfTheWorldAndGivesEachRankOneShard) {
  const ZeroLayout last = ShardLayout(10, 3, 2);
  EXPECT_EQ(last.shard, 4);
  EXPECT_EQ(last.padded, 12);
  EXPECT_EQ(last.begin, 8);
  const ZeroLayout even = ShardLayout(10, 2, 1);
  EXPECT_EQ(even.shard, 5);
  EXPECT_EQ(even.padded, 10);
  EXPECT_EQ(even.begin, 5);
  const ZeroLayout one = ShardLayout(7, 1, 0);
  EXPECT_EQ(one.shard, 7);
  EXPECT_EQ(one.begin, 0);
}

TEST(ZeroLayout, GroupShardsCoverEveryGroupElementOnceOverTheRanks) {
  // Three groups of 3, 1 and 6 elements (10), over 3 ranks of 4 (2 padding).
  const std::vector<std::pair<int64_t, int64_t>> groups = {
      {0, 3}, {3, 1}, {4, 6}};
  std::vector<int> owners(10, 0);
  for (int rank = 0; rank < 3; ++rank) {
    const ZeroLayout l = ShardLayout(10, 3, rank);
    for (const GroupShard& s : GroupShards(groups, l)) {
      EXPECT_LT(s.begin, s.end);
      EXPECT_GE(s.begin, groups[s.group].first);
      EXPECT_LE(s.end, groups[s.group].first + groups[s.group].second);
      EXPECT_GE(s.begin, l.begin);
      EXPECT_LE(s.end, l.begin + l.shard);
      for (int64_t i = s.begin; i < s.end; ++i) ++owners[i];
    }
  }
  for (int i = 0; i < 10; ++i) EXPECT_EQ(owners[i], 1) << i;
  // Rank 2 owns [8, 12): only the last group's tail, never the padding.
  const std::vector<GroupShard> last =
      GroupShards(groups, ShardLayout(10, 3, 2));
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].group, 2u);
  EXPECT_EQ(last[0].begin, 8);
  EXPECT_EQ(last[0].end, 10);
}

}  // namespace
}  // namespace isoflop::trainer
