// ZeRO-1 (Rajbhandari et al. 2020, stage 1; trainer/README.md "ZeRO-1"): the
// AdamW moments are sharded over the data-parallel ranks. The flat buffers of
// the step (gradients, fp32 weights) are padded to a multiple of the world
// size; rank r owns the contiguous shard [r * shard, (r + 1) * shard) of
// that layout: its gradients arrive reduce-scattered, it steps its shard of
// the weights with its shard of the moments, and the weights are then
// all-gathered. Pure index arithmetic here (no tensors), tested in
// tests/trainer/zero_test.cc.
#ifndef ISOFLOP_TRAINER_ZERO_H_
#define ISOFLOP_TRAINER_ZERO_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace isoflop::trainer {

struct ZeroLayout {
  int64_t padded = 0;  // world * shard >= total
  int64_t shard = 0;   // elements each rank owns
  int64_t begin = 0;   // this rank's shard: [begin, begin + shard)
};

// The layout of `total` (> 0) elements over `world` (>= 1) ranks, for
// `rank` in [0, world).
ZeroLayout ShardLayout(int64_t total, int world, int rank);

// The part of a parameter group inside a shard: [begin, end) of the flat
// layout, begin < end.
struct GroupShard {
  size_t group = 0;
  int64_t begin = 0, end = 0;
};

// Each group's (begin, numel) range of the flat layout cut to `layout`'s
// shard, groups that miss the shard left out (the padding belongs to no
// group, so it is never stepped).
std::vector<GroupShard> GroupShards(
    const std::vector<std::pair<int64_t, int64_t>>& group_ranges,
    const ZeroLayout& layout);

}  // namespace isoflop::trainer

#endif  // ISOFLOP_TRAINER_ZERO_H_
