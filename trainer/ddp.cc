#include "trainer/ddp.h"

#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/strings/str_cat.h"

namespace isoflop::trainer {
namespace {

constexpr int64_t kFirstBucketBytes = 1
                                      << 20;  // DDP's default: backward starts
constexpr int64_t kBucketBytes = 25 << 20;    // overlapping early

// A contiguous range [begin, end) of the flat gradient buffer.
struct Bucket {
  int64_t begin = 0, end = 0;
  int params = 0;
  int pending = 0;  // params not yet accumulated in this backward
  c10::intrusive_ptr<c10d::Work> work;
};

// NCCL process group, buckets fired from post-accumulate-grad hooks.
class NcclGradSync : public GradSync {
 public:
  NcclGradSync(c10::intrusive_ptr<c10d::TCPStore> store,
               const DistOptions& dist, const std::vector<at::Tensor>& params,
               const at::Tensor& flat, const std::vector<int64_t>& offsets,
               StageFn stage)
      : store_(std::move(store)),
        pg_(c10::make_intrusive<c10d::ProcessGroupNCCL>(store_, dist.rank,
                                                        dist.world_size)),
        flat_(flat),
        stage_(std::move(stage)) {
    // Buckets in reverse parameter order: the order backward produces them.
    for (size_t i = params.size(); i-- > 0;) {
      const int64_t bytes = 4 * params[i].numel();
      const int64_t cap =
          buckets_.size() <= 1 ? kFirstBucketBytes : kBucketBytes;
      if (buckets_.empty() ||
          4 * (buckets_.back().end - buckets_.back().begin) + bytes > cap) {
        buckets_.push_back({.begin = offsets[i], .end = offsets[i]});
      }
      buckets_.back().end = offsets[i] + params[i].numel();
      ++buckets_.back().params;
      torch::autograd::impl::set_post_acc_grad_hooks(
          params[i], std::make_unique<Hook>(this, buckets_.size() - 1));
    }
    // Communicators are created lazily: do it now, outside any graph capture.
    std::vector<at::Tensor> probe{at::zeros({1}, flat.options())};
    pg_->allreduce(probe)->wait();
  }

  void Arm() override {
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = true;
    for (Bucket& b : buckets_) {
      b.pending = b.params;
      b.work.reset();
    }
  }

  void Finish(at::Tensor& loss) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < buckets_.size(); ++i) {
        if (!buckets_[i].work) Launch(i);  // parameters that got no gradient
      }
      armed_ = false;
    }
    for (Bucket& b : buckets_) b.work->wait();  // the current stream waits
    Mean(loss);
  }

  void Mean(at::Tensor& t) override {
    std::vector<at::Tensor> v{t};
    pg_->allreduce(v, Avg())->wait();
  }

  void Shutdown() override { pg_->shutdown(); }

 private:
  struct Hook : torch::autograd::PostAccumulateGradHook {
    Hook(NcclGradSync* sync, size_t bucket) : sync(sync), bucket(bucket) {}
    void operator()(const torch::autograd::Variable&) override {
      sync->Ready(bucket);
    }
    NcclGradSync* sync;
    size_t bucket;
  };

  static c10d::AllreduceOptions Avg() {
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::AVG;
    return o;
  }

  // Runs on the autograd engine's thread, with the backward's stream current.
  void Ready(size_t bucket) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!armed_) return;
    if (--buckets_[bucket].pending == 0) Launch(bucket);
  }

  void Launch(size_t i) {  // mu_ held
    const int64_t n = buckets_[i].end - buckets_[i].begin;
    if (stage_) stage_(buckets_[i].begin, n);
    std::vector<at::Tensor> v{flat_.narrow(0, buckets_[i].begin, n)};
    buckets_[i].work = pg_->allreduce(v, Avg());
  }

  c10::intrusive_ptr<c10d::TCPStore> store_;
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> pg_;
  at::Tensor flat_;
  StageFn stage_;
  std::mutex mu_;
  bool armed_ = false;
  std::vector<Bucket> buckets_;
};

// CPU: the torch wheel ships ProcessGroupGloo's header without gloo's own
// headers, so the CPU path all-reduces through the TCPStore: every rank posts
// its buffer and sums all of them in rank order (the same sum, bitwise, on
// every rank). Fine for the tiny models CI trains; not for speed.
class StoreGradSync : public GradSync {
 public:
  StoreGradSync(c10::intrusive_ptr<c10d::TCPStore> store,
                const DistOptions& dist, const at::Tensor& flat, StageFn stage)
      : store_(std::move(store)),
        rank_(dist.rank),
        world_(dist.world_size),
        flat_(flat),
        stage_(std::move(stage)) {}

  void Arm() override {}
  void Finish(at::Tensor& loss) override {
    if (stage_) stage_(0, flat_.numel());
    AllReduceMean(flat_);
    Mean(loss);
  }
  void Mean(at::Tensor& t) override {
    at::Tensor flat = t.reshape({-1});
    AllReduceMean(flat);
  }
  // Rank 0 hosts the store: it stays until every rank has read its last
  // round (each posts "done" after it).
  void Shutdown() override {
    store_->set(absl::StrCat("isoflop/done/", rank_), std::vector<uint8_t>{1});
    if (rank_ != 0) return;
    for (int r = 0; r < world_; ++r)
      store_->get(absl::StrCat("isoflop/done/", r));
  }

 private:
  void AllReduceMean(at::Tensor& t) {  // contiguous CPU fp32
    const int64_t round = round_++;
    const auto* src = static_cast<const uint8_t*>(t.data_ptr());
    store_->set(Key(round, rank_), std::vector<uint8_t>(src, src + t.nbytes()));
    at::Tensor sum = at::zeros_like(t);
    for (int r = 0; r < world_; ++r) {
      const std::vector<uint8_t> bytes = store_->get(Key(round, r));
      at::Tensor part = at::empty_like(t);
      std::memcpy(part.data_ptr(), bytes.data(), bytes.size());
      sum += part;
    }
    t.copy_(sum / static_cast<double>(world_));
    // Every rank read round - 2 before posting round - 1: safe to drop.
    if (round >= 2) store_->deleteKey(Key(round - 2, rank_));
  }
  static std::string Key(int64_t round, int rank) {
    return absl::StrCat("isoflop/ar/", round, "/", rank);
  }

  c10::intrusive_ptr<c10d::TCPStore> store_;
  int rank_, world_;
  at::Tensor flat_;
  StageFn stage_;
  int64_t round_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GradSync>> MakeGradSync(
    const DistOptions& dist, at::Device device,
    const std::vector<at::Tensor>& params, const at::Tensor& flat_grad,
    const std::vector<int64_t>& offsets, StageFn stage) {
  c10::intrusive_ptr<c10d::TCPStore> store;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(dist.master_port);
    so.isServer = dist.rank == 0;
    so.numWorkers = dist.world_size;
    so.waitWorkers = true;
    so.timeout = std::chrono::seconds(120);
    store = c10::make_intrusive<c10d::TCPStore>(dist.master_addr, so);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("rendezvous at ", dist.master_addr, ":", dist.master_port,
                     " failed: ", e.what()));
  }
  if (device.is_cuda()) {
    return std::make_unique<NcclGradSync>(store, dist, params, flat_grad,
                                          offsets, std::move(stage));
  }
  return std::make_unique<StoreGradSync>(store, dist, flat_grad,
                                         std::move(stage));
}

}  // namespace isoflop::trainer
