#include "trainer/zero.h"

#include <algorithm>

namespace isoflop::trainer {

ZeroLayout ShardLayout(int64_t total, int world, int rank) {
  ZeroLayout l;
  l.shard = (total + world - 1) / world;
  l.padded = l.shard * world;
  l.begin = l.shard * rank;
  return l;
}

std::vector<GroupShard> GroupShards(
    const std::vector<std::pair<int64_t, int64_t>>& group_ranges,
    const ZeroLayout& layout) {
  std::vector<GroupShard> out;
  for (size_t g = 0; g < group_ranges.size(); ++g) {
    const auto [begin, numel] = group_ranges[g];
    const int64_t lo = std::max(begin, layout.begin);
    const int64_t hi = std::min(begin + numel, layout.begin + layout.shard);
    if (lo < hi) out.push_back({.group = g, .begin = lo, .end = hi});
  }
  return out;
}

}  // namespace isoflop::trainer
