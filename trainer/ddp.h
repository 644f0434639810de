// Data parallelism without torch.nn.parallel (which LibTorch lacks): a
// c10d process group (NCCL on CUDA) rendezvoused through a c10d::TCPStore,
// and flat gradient buckets all-reduced from post-accumulate-grad hooks so
// the communication of late layers overlaps the backward of early ones.
#ifndef ISOFLOP_TRAINER_DDP_H_
#define ISOFLOP_TRAINER_DDP_H_

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/options.h"

namespace isoflop::trainer {

class GradSync {
 public:
  virtual ~GradSync() = default;
  // Arms the hooks for the backward that follows (the last micro-step of a
  // step): each bucket is all-reduced (mean) as soon as all its gradients
  // are accumulated. Call on the thread that runs the step.
  virtual void Arm() = 0;
  // After backward: launches the buckets not yet launched, makes the current
  // stream wait for all of them, and averages `loss` (0-dim fp32) over ranks.
  // On CUDA nothing blocks the host, so the step stays graph-capturable.
  virtual void Finish(at::Tensor& loss) = 0;
  // Averages a 0-dim fp32 tensor over ranks (validation loss); blocking.
  virtual void Mean(at::Tensor& t) = 0;
  // Sums a contiguous fp32 tensor over ranks in place (ZeRO-1: the squared
  // gradient norm's shard sums); on CUDA the current stream waits, the host
  // does not.
  virtual void Sum(at::Tensor& t) = 0;
  // ZeRO-1: `flat` (world_size * shard elements, contiguous) receives every
  // rank's shard [r * shard, (r + 1) * shard) of itself, in place (the
  // weights after each rank stepped its own). Same waiting as Sum.
  virtual void AllGather(at::Tensor& flat) = 0;
  // The bitwise OR of `flags` (bits 0-7) over ranks; blocks the host. The
  // ranks agree with it on a checkpoint that all of them must join.
  virtual int AnyFlags(int flags) = 0;
  virtual void Shutdown() = 0;
};

// Rendezvous of dist.world_size ranks at dist.master_addr:master_port and the
// process group: NCCL for CUDA, and for CPU an all-reduce through the store
// itself (the torch wheel ships no gloo headers; see trainer/README.md).
// `flat_grad` is one flat fp32 buffer laid out in reverse order of `params`
// (so buckets are contiguous), `offsets` each parameter's place in it. The
// hooks go on `params` (the tensors backward accumulates into: the bf16
// working copy, or the fp32 weights whose gradients are views of
// flat_grad); `stage(begin, length)`, when set, fills that range of
// flat_grad just before it is all-reduced (the working copy's bf16
// gradients, cast to fp32: packed from autograd's fresh tensors, or summed
// over micro-steps). `shard` > 0 is ZeRO-1 (trainer/zero.h): flat_grad holds
// world_size * shard elements and Finish reduce-scatters instead of
// all-reducing: each bucket's range is averaged onto the rank(s) whose shard
// it overlaps, so afterwards only this rank's shard holds the mean gradient.
// UNAVAILABLE if the rendezvous times out.
using StageFn = std::function<void(int64_t begin, int64_t length)>;
absl::StatusOr<std::unique_ptr<GradSync>> MakeGradSync(
    const DistOptions& dist, at::Device device,
    const std::vector<at::Tensor>& params, const at::Tensor& flat_grad,
    const std::vector<int64_t>& offsets, StageFn stage = nullptr,
    int64_t shard = 0);

}  // namespace isoflop::trainer

#endif  // ISOFLOP_TRAINER_DDP_H_
