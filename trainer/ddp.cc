#include "trainer/ddp.h"

#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
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
  // The all-reduce, or (ZeRO-1) one reduce per rank whose shard it overlaps.
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
};

// Bit i of an AnyFlags mask, as one int per bit (NCCL has no bitwise OR).
constexpr int kFlagBits = 8;

// NCCL process group, buckets fired from post-accumulate-grad hooks.
class NcclGradSync : public GradSync {
 public:
  NcclGradSync(c10::intrusive_ptr<c10d::TCPStore> store,
               const DistOptions& dist, const std::vector<at::Tensor>& params,
               const at::Tensor& flat, const std::vector<int64_t>& offsets,
               StageFn stage, int64_t shard)
      : store_(std::move(store)),
        pg_(c10::make_intrusive<c10d::ProcessGroupNCCL>(store_, dist.rank,
                                                        dist.world_size)),
        rank_(dist.rank),
        flat_(flat),
        stage_(std::move(stage)),
        shard_(shard) {
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
      b.works.clear();
    }
  }

  void Finish(at::Tensor& loss) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < buckets_.size(); ++i) {
        if (buckets_[i].works.empty()) Launch(i);  // got no gradient
      }
      armed_ = false;
    }
    for (Bucket& b : buckets_) {
      for (auto& w : b.works) w->wait();  // the current stream waits
    }
    Mean(loss);
  }

  void Mean(at::Tensor& t) override {
    std::vector<at::Tensor> v{t};
    pg_->allreduce(v, Avg())->wait();
  }

  void Sum(at::Tensor& t) override {
    std::vector<at::Tensor> v{t};
    pg_->allreduce(v)->wait();  // default: SUM
  }

  void AllGather(at::Tensor& flat) override {
    at::Tensor mine = flat.narrow(0, rank_ * shard_, shard_);
    pg_->_allgather_base(flat, mine)->wait();  // in place
  }

  int AnyFlags(int flags) override {
    std::vector<int32_t> bits(kFlagBits);
    for (int i = 0; i < kFlagBits; ++i) bits[i] = (flags >> i) & 1;
    std::vector<at::Tensor> v{at::tensor(bits, at::kInt).to(flat_.device())};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::MAX;
    pg_->allreduce(v, o)->wait();
    const at::Tensor host = v[0].cpu();
    int any = 0;
    for (int i = 0; i < kFlagBits; ++i)
      any |= (host[i].item<int32_t>() != 0 ? 1 : 0) << i;
    return any;
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
    Bucket& b = buckets_[i];
    const int64_t n = b.end - b.begin;
    if (stage_) stage_(b.begin, n);
    if (shard_ == 0) {
      std::vector<at::Tensor> v{flat_.narrow(0, b.begin, n)};
      b.works.push_back(pg_->allreduce(v, Avg()));
      return;
    }
    // ZeRO-1: the bucket's part in each owner's shard, averaged onto that
    // owner (together: a reduce-scatter of the flat buffer, bucket by
    // bucket, so it still overlaps the backward).
    for (int64_t owner = b.begin / shard_; owner * shard_ < b.end; ++owner) {
      const int64_t lo = std::max(b.begin, owner * shard_);
      const int64_t hi = std::min(b.end, (owner + 1) * shard_);
      std::vector<at::Tensor> v{flat_.narrow(0, lo, hi - lo)};
      c10d::ReduceOptions o;
      o.reduceOp = c10d::ReduceOp::AVG;
      o.rootRank = owner;
      b.works.push_back(pg_->reduce(v, o));
    }
  }

  c10::intrusive_ptr<c10d::TCPStore> store_;
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> pg_;
  int rank_;
  at::Tensor flat_;
  StageFn stage_;
  int64_t shard_;  // ZeRO-1 shard size; 0: all-reduce
  std::mutex mu_;
  bool armed_ = false;
  std::vector<Bucket> buckets_;
};

// CPU: the torch wheel ships ProcessGroupGloo's header without gloo's own
// headers, so the CPU path all-reduces through the TCPStore: every rank posts
// its buffer and sums all of them in rank order (the same sum, bitwise, on
// every rank). Fine for the tiny models CI trains; not for speed. ZeRO-1's
// reduce-scatter posts each owner its shard and sums the same way, so a
// shard holds bitwise the all-reduced mean of the same elements.
class StoreGradSync : public GradSync {
 public:
  StoreGradSync(c10::intrusive_ptr<c10d::TCPStore> store,
                const DistOptions& dist, const at::Tensor& flat, StageFn stage,
                int64_t shard)
      : store_(std::move(store)),
        rank_(dist.rank),
        world_(dist.world_size),
        flat_(flat),
        stage_(std::move(stage)),
        shard_(shard) {}

  void Arm() override {}
  void Finish(at::Tensor& loss) override {
    if (stage_) stage_(0, flat_.numel());
    if (shard_ == 0) {
      AllReduce(flat_, /*mean=*/true);
    } else {
      ReduceScatterMean(flat_);
    }
    Mean(loss);
  }
  void Mean(at::Tensor& t) override {
    at::Tensor flat = t.reshape({-1});
    AllReduce(flat, /*mean=*/true);
  }
  void Sum(at::Tensor& t) override {
    at::Tensor flat = t.reshape({-1});
    AllReduce(flat, /*mean=*/false);
  }
  void AllGather(at::Tensor& flat) override {
    const int64_t round = BeginRound();
    Post(Key(round, rank_), flat.narrow(0, rank_ * shard_, shard_));
    for (int r = 0; r < world_; ++r) {
      if (r == rank_) continue;
      Read(Key(round, r), flat.narrow(0, r * shard_, shard_));
    }
  }
  int AnyFlags(int flags) override {
    const int64_t round = BeginRound();
    const std::string key = Key(round, rank_);
    store_->set(key, std::vector<uint8_t>{static_cast<uint8_t>(flags)});
    posted_.back().push_back(key);
    int any = 0;
    for (int r = 0; r < world_; ++r) any |= store_->get(Key(round, r)).at(0);
    return any;
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
  // Starts a round of posts. Every round has each rank read a key of every
  // other rank, so every rank read round - 2 before posting round - 1: the
  // keys this rank posted in round - 2 are safe to drop.
  int64_t BeginRound() {
    if (posted_.size() == 2) {
      for (const std::string& key : posted_.front()) store_->deleteKey(key);
      posted_.pop_front();
    }
    posted_.emplace_back();
    return round_++;
  }
  void Post(const std::string& key, const at::Tensor& t) {  // contiguous CPU
    const auto* src = static_cast<const uint8_t*>(t.data_ptr());
    store_->set(key, std::vector<uint8_t>(src, src + t.nbytes()));
    posted_.back().push_back(key);
  }
  void Read(const std::string& key, const at::Tensor& dst) {
    const std::vector<uint8_t> bytes = store_->get(key);
    TORCH_CHECK(bytes.size() == dst.nbytes(), "store key ", key, ": ",
                bytes.size(), " bytes, expected ", dst.nbytes());
    std::memcpy(dst.data_ptr(), bytes.data(), bytes.size());
  }
  // The sum over ranks, in rank order, of the tensors posted under key(r).
  at::Tensor SumOf(const at::Tensor& like,
                   const std::function<std::string(int)>& key) {
    at::Tensor sum = at::zeros_like(like);
    at::Tensor part = at::empty_like(like);
    for (int r = 0; r < world_; ++r) {
      Read(key(r), part);
      sum += part;
    }
    return sum;
  }
  void AllReduce(at::Tensor& t, bool mean) {  // contiguous CPU fp32
    const int64_t round = BeginRound();
    Post(Key(round, rank_), t);
    at::Tensor sum = SumOf(t, [&](int r) { return Key(round, r); });
    t.copy_(mean ? sum / static_cast<double>(world_) : sum);
  }
  // Rank r posts shard q of `t` for its owner q; each rank sums its own.
  void ReduceScatterMean(at::Tensor& t) {
    const int64_t round = BeginRound();
    for (int q = 0; q < world_; ++q)
      Post(Key(round, rank_, q), t.narrow(0, q * shard_, shard_));
    at::Tensor mine = t.narrow(0, rank_ * shard_, shard_);
    at::Tensor sum = SumOf(mine, [&](int r) { return Key(round, r, rank_); });
    mine.copy_(sum / static_cast<double>(world_));
  }
  static std::string Key(int64_t round, int rank, int owner = -1) {
    return owner < 0
               ? absl::StrCat("isoflop/ar/", round, "/", rank)
               : absl::StrCat("isoflop/rs/", round, "/", rank, "/", owner);
  }

  c10::intrusive_ptr<c10d::TCPStore> store_;
  int rank_, world_;
  at::Tensor flat_;
  StageFn stage_;
  int64_t shard_;  // ZeRO-1 shard size; 0: all-reduce
  int64_t round_ = 0;
  std::deque<std::vector<std::string>> posted_;  // keys of the last rounds
};

}  // namespace

absl::StatusOr<std::unique_ptr<GradSync>> MakeGradSync(
    const DistOptions& dist, at::Device device,
    const std::vector<at::Tensor>& params, const at::Tensor& flat_grad,
    const std::vector<int64_t>& offsets, StageFn stage, int64_t shard) {
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
                                          offsets, std::move(stage), shard);
  }
  return std::make_unique<StoreGradSync>(store, dist, flat_grad,
                                         std::move(stage), shard);
}

}  // namespace isoflop::trainer
