#include "trainer/train.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <fcntl.h>
#include <signal.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <numbers>
#include <optional>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/boot_clock.h"
#include "common/status_macros.h"
#include "common/token_file.h"
#include "trainer/checkpoint.h"
#include "trainer/cuda/kernels.h"
#include "trainer/ddp.h"
#include "trainer/model.h"
#include "trainer/model_file.h"
#include "trainer/watchdog.h"
#include "trainer/zero.h"

namespace isoflop::trainer {
namespace {

// --attention: leaves ATen the one fused SDPA kernel asked for, and the math
// kernel for shapes it refuses (AttentionBackend() names the one that runs).
// auto on CUDA: ATen prefers cuDNN on Hopper; flash takes head dims of at
// most 32, where on the H200 (bench/results/h200-2026-12-02-trainer-
// issue6b.md) the training step was 0-1.5% faster with it over three runs,
// while at head_dim 64 cuDNN's is 5% faster. (Timing the two kernels alone
// at start-up picked flash for both: the kernel alone does not tell the
// step.) Returns what the start line reports of auto's choice.
std::string SelectAttention(const TrainOptions& o, at::Device device) {
  at::Context& c = at::globalContext();
  if (o.attention != "auto") {
    c.setSDPUseCuDNN(o.attention == "cudnn");
    c.setSDPUseFlash(o.attention == "flash");
    c.setSDPUseMemEfficient(o.attention == "efficient");
    c.setSDPUseMath(true);
    return "";
  }
  if (!device.is_cuda() || o.precision == "fp32") return "";
  if (o.d_model / o.n_heads > 32) return " (auto: head_dim > 32)";
  c.setSDPUseCuDNN(false);
  return " (auto: head_dim <= 32)";
}

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

double UnixNow() {
  return std::chrono::duration<double>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Set by the SIGTERM handler (installed only with a checkpoint directory);
// the training loop checkpoints and stops at the next step boundary.
constexpr double kMaxEpochs = 4;
std::atomic<bool> g_sigterm{false};
void OnSigterm(int) { g_sigterm.store(true); }

// The lease watchdog of this process (--watchdog-fd), set by Train; null
// without one. Checked once more under the fence lock before a checkpoint
// is renamed into place (trainer/watchdog.h).
Watchdog* g_watchdog = nullptr;

absl::Status WatchdogAllowsCommit() {
  if (g_watchdog != nullptr && g_watchdog->Check()) {
    return absl::AbortedError("fenced: the lease watchdog expired");
  }
  return absl::OkStatus();
}

// Mixed-precision autocast on CUDA for the forward pass. LibTorch has no RAII
// guard; this mirrors torch.autocast.__enter__/__exit__ (research §2.1).
class AutocastGuard {
 public:
  explicit AutocastGuard(std::optional<at::ScalarType> dtype) : dtype_(dtype) {
    if (!dtype_) return;
    prev_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    prev_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, *dtype_);  // default is fp16
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!dtype_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCUDA, prev_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, prev_dtype_);
  }

 private:
  std::optional<at::ScalarType> dtype_;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kBFloat16;
};

// Metrics as one JSON object per line, flushed per line; silent if disabled.
class MetricsWriter {
 public:
  MetricsWriter(int fd, bool enabled)
      : out_(!enabled ? nullptr
             : fd < 0 ? stdout
                      : fdopen(fd, "w")) {}
  void Line(const std::string& json) {
    if (out_ == nullptr) return;
    absl::StrAppend(&history_, json, "\n");
    Write(json);
  }
  // The reader of the metrics pipe (the worker) is gone: nobody records what
  // we train from now on.
  bool reader_gone() const { return reader_gone_; }
  // Every line written so far (kept in checkpoints: a worker killed before
  // relaying them loses them, and the next attempt re-emits them).
  const std::string& history() const { return history_; }
  // Continues the history of a checkpoint and re-emits its lines whose step
  // is >= `from` (none when `from` < 0).
  void Resume(std::string history, int64_t from) {
    history_ = std::move(history);
    if (out_ == nullptr || from < 0) return;
    for (absl::string_view line : absl::StrSplit(history_, '\n')) {
      long long step = -1;
      if (std::sscanf(std::string(line).c_str(), R"({"step": %lld)", &step) ==
              1 &&
          step >= from) {
        Write(std::string(line));
      }
    }
  }

 private:
  void Write(const std::string& json) {
    if (reader_gone_) return;
    std::fputs(json.c_str(), out_);
    std::fputc('\n', out_);
    if (std::fflush(out_) != 0 && errno == EPIPE) reader_gone_ = true;
  }

  FILE* out_;
  bool reader_gone_ = false;
  std::string history_;
};

absl::StatusOr<TokenFile> OpenSplit(const TrainOptions& o, const char* name) {
  const std::string path = (std::filesystem::path(o.data_dir) / name).string();
  ASSIGN_OR_RETURN(TokenFile file, TokenFile::Open(path));
  if (file.vocab_size() > o.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": vocab_size = ", file.vocab_size(),
                     ": must be <= --vocab-size = ", o.vocab_size,
                     " (the dataset was tokenised with a larger vocabulary)"));
  }
  if (static_cast<int64_t>(file.size()) < o.context + 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", file.size(),
                     " tokens: must be >= --context + 2 = ", o.context + 2));
  }
  // The header can understate the vocabulary; an id >= V would index past the
  // embedding. One pass over the mapping (a few ms for the KJV).
  const TokenSpan tokens = file.tokens();
  const size_t bad = tokens.FindIdAtLeast(static_cast<uint64_t>(o.vocab_size));
  if (bad < tokens.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": token[", bad, "] = ", tokens[bad],
                     ": must be < --vocab-size = ", o.vocab_size));
  }
  return file;
}

ModelDims DimsOf(const TrainOptions& o) {
  return {o.vocab_size, o.context, o.d_model, o.n_layers, o.n_heads, o.d_ff};
}

std::optional<at::ScalarType> AutocastDtype(const TrainOptions& o) {
  if (o.precision == "bf16" || o.precision == "bf16-autocast")
    return at::kBFloat16;
  if (o.precision == "fp16") return at::kHalf;
  return std::nullopt;
}

// --precision bf16: the step computes with a bf16 working copy of
// the fp32 master weights, cast once per step, and keeps activations and the
// residual stream in bf16, as torchtitan's FSDP2 mixed precision
// (param_dtype bf16); gradients are cast to fp32 once for the optimizer.
// Autocast (bf16-autocast) casts each weight and activation at each use and
// keeps an fp32 residual stream: ~25 extra kernels a layer.
bool WorkingCopy(const TrainOptions& o) { return o.precision == "bf16"; }

// AdamW constants besides --beta2 and --weight-decay.
constexpr double kBeta1 = 0.9, kAdamEps = 1e-8;

// The bf16 working copy's one-kernel AdamW step (cuda/adamw.cu) applies to
// every run of an nvcc build on CUDA; --legacy adamw turns it off for A/B
// runs (as the other fused pieces, trainer/model.cc).
// ZeRO-1 steps shards with ATen's fused AdamW (trainer/zero.h).
bool UseFusedAdamW(const TrainOptions& o, at::Device device) {
  return WorkingCopy(o) && device.is_cuda() && cuda::Compiled() &&
         !o.legacy.adamw && o.zero_stage == 0;
}

// ZeRO-1 needs a process group; with one process it would change nothing.
bool UseZero(const TrainOptions& o) {
  return o.zero_stage >= 1 && o.dist.world_size > 0;
}

// Bits of the checkpoint conditions the ranks agree on under ZeRO-1 (every
// rank joins the gather of the sharded state): GradSync::AnyFlags.
constexpr int kReaderGone = 1, kSigterm = 2, kAtRisk = 4, kTimerDue = 8;

// With one micro-step the fused step takes the backward's bf16 gradients
// as autograd leaves them (fresh tensors, no zero fill, no accumulation
// kernels) and packs them with one kernel: into flat_work_grad_ (bf16), which
// it reads as it is with one device, or bucket by bucket into the fp32
// flat_grad_ that DDP all-reduces. Accumulation over micro-steps sums into
// flat_grad_ instead.
bool UseStolenGrads(const TrainOptions& o, at::Device device) {
  return UseFusedAdamW(o, device) && o.grad_accum == 1;
}

bool UseBf16Grads(const TrainOptions& o, at::Device device) {
  return UseStolenGrads(o, device) && o.dist.world_size == 0;
}

// The configuration a checkpoint must match to be resumed. Excludes --steps
// and the schedule so that WSD cool-downs can branch from a trunk checkpoint.
uint64_t Fingerprint(const TrainOptions& o) {
  const std::string s = absl::StrCat(
      o.vocab_size, "/", o.context, "/", o.d_model, "/", o.n_layers, "/",
      o.n_heads, "/", o.d_ff, "/", o.batch_sequences, "/", o.grad_accum, "/",
      std::max(o.dist.world_size, 1), "/", o.precision, "/", o.seed, "/",
      o.mup_base_width);
  return Checksum64({s.data(), s.size()});
}

class Trainer {
 public:
  // `train` and `val` (each >= context + 2 ids < vocab_size, uint16 or
  // uint32) outlive this.
  Trainer(const TrainOptions& o, TokenSpan train, TokenSpan val,
          at::Device device);

  // Creates the process group when o.dist.world_size > 0.
  absl::Status Init();
  absl::Status Run();
  // Times o.steps steps after `warmup_steps` untimed ones; no metrics lines.
  BenchResult Bench(int64_t warmup_steps, double peak_flops);
  std::string Profile(int64_t warmup_steps, const std::string& trace_path);

 private:
  void UploadBatch(int64_t step);  // host windows of `step` -> batch_
  void DeviceStep();               // the captured part
  // flat_grad_[begin, begin + n) = (first ? 0 : itself) + the bf16 working
  // copy's gradients there (fp32 accumulation over micro-steps).
  void AccumulateWorkGrads(int64_t begin, int64_t n, bool first);
  // The stolen gradients (UseStolenGrads) of the parameters in [begin,
  // begin + n) of the flat layout, left by autograd in fresh tensors, into
  // flat_grad_ (fp32: a DDP bucket) or flat_work_grad_ (bf16: all of them;
  // the pack kernel then also sums their squares into packed_sumsq_).
  void PackGrads(int64_t begin, int64_t n, bool to_fp32);
  // The fused_adamw_ optimizer step: one FusedAdamWBf16 per group, reading
  // flat_work_grad_ (bf16_grads_) or flat_grad_ scaled by `clip` (fp32
  // 0-dim) and writing flat_work_.
  void FusedAdamWStep(const at::Tensor& clip);
  void TrainStep(int64_t step);  // upload, LR, replay or eager step
  double Validate();
  std::string AttentionBackend() const;
  // Reads the loss of step `done` (waiting for the device) and writes its
  // metrics line; tokens/s over the `tokens` trained since `since`, timed
  // after that wait (the host runs steps ahead of a GPU).
  absl::Status LogTrainStep(int64_t done, double lr, double tokens,
                            Clock::time_point since);
  absl::StatusOr<double> CheckedValidate(int64_t done);
  absl::Status SaveCheckpoint(int64_t done);
  // A trunk's kept checkpoint after `done` steps (--save-at-steps), then its
  // metrics line (checkpoint_kept, state_hash).
  absl::Status SaveKeptCheckpoint(int64_t done);
  // The blobs of the training state after `done` steps; `keep` holds the CPU
  // copies they point into. Without the metrics history.
  std::vector<BlobView> StateBlobs(int64_t done, std::vector<at::Tensor>& keep);
  absl::StatusOr<int64_t> LoadCheckpoint();  // returns the steps done
  // Restores the state from `blobs`, read from `path`; the metrics history
  // too when `with_history`. Returns the steps done.
  absl::StatusOr<int64_t> Restore(const std::string& path,
                                  const std::vector<Blob>& blobs,
                                  bool with_history);
  // A branch without a checkpoint of its own: the trunk's kept checkpoint
  // --init-from/kept.<--init-step>.bin; UNAVAILABLE (retryable) naming the
  // path when it is not there.
  absl::StatusOr<int64_t> InitFromTrunk();
  void Sync() const {
    if (device_.is_cuda()) torch::cuda::synchronize();
  }
  // Per group, per parameter: views of a flat tensor in the layout of
  // flat_grad_ (the AdamW moments' checkpoint blobs).
  std::vector<std::vector<at::Tensor>> ParamViews(const at::Tensor& flat) const;
  // ZeRO-1: this rank's shard `shard` of a flat buffer gathered whole from
  // every rank, on the CPU (checkpoints). Every rank must call it.
  at::Tensor GatherToCpu(const at::Tensor& shard);
  // The AdamW moments' bytes this rank holds (all of them, or its shard).
  int64_t OptimizerStateBytes() const {
    return flat_exp_avg_.nbytes() + flat_exp_avg_sq_.nbytes();
  }

  const TrainOptions& o_;
  TokenSpan train_, val_;
  at::Device device_;
  Gpt model_;
  MetricsWriter metrics_;
  std::optional<at::ScalarType> autocast_;
  std::string attention_note_;  // how --attention auto chose, for the log
  bool fp16_;
  int64_t micro_batch_;  // sequences per rank per micro-step
  int rank_ = 0, world_ = 1;
  std::unique_ptr<GradSync> sync_;
  // ZeRO-1 (UseZero, trainer/zero.h): flat_grad_ and flat_master_ (the fp32
  // weights, also without a working copy) are padded to zero_layout_.padded;
  // flat_exp_avg_ and flat_exp_avg_sq_ hold this rank's shard only, and
  // exp_avg_ / exp_avg_sq_ stay empty.
  bool zero_;
  ZeroLayout zero_layout_;
  std::vector<GroupShard> group_shards_;
  // Each group's parameters' offsets in the flat layout.
  std::vector<std::vector<int64_t>> group_offsets_;

  // Master weights and the bf16 working copy (WorkingCopy): flat, in the
  // layout of flat_grad_; model_'s parameters are views of flat_master_,
  // work_model_'s of flat_work_ (their gradients: views of flat_work_grad_).
  bool working_copy_;
  // UseFusedAdamW and UseBf16Grads, decided once (the CUDA graph captures
  // one path). The fused step keeps flat_work_ = bf16(flat_master_) after
  // each step, so DeviceStep casts no weights: every other writer of
  // flat_master_ (constructor, LoadCheckpoint) refreshes flat_work_ too.
  // With bf16_grads_ it reads flat_work_grad_ (flat_grad_ stays unused),
  // else the fp32 flat_grad_.
  bool fused_adamw_, stolen_grads_, bf16_grads_;
  at::Tensor clip_;  // fp32 (1): the fused step's clip coefficient
  // PackGrads' per-block sums of squared gradients, and whether its
  // last call wrote them (the pack kernel took the gradients).
  at::Tensor packed_sumsq_;
  bool packed_ = false;
  at::Tensor flat_master_, flat_work_, flat_work_grad_;
  std::optional<Gpt> work_model_;
  at::Tensor flat_grad_;  // fp32, all gradients (reverse param order)
  std::vector<int64_t> grad_offsets_;  // of each parameter in flat_grad_
  // AdamW moments, fp32 in the layout of flat_grad_; exp_avg_ and
  // exp_avg_sq_ are per-parameter views of them (checkpoints, ATen's step).
  at::Tensor flat_exp_avg_, flat_exp_avg_sq_;
  std::vector<std::vector<at::Tensor>> exp_avg_, exp_avg_sq_,
      grads_;  // per group
  // (begin, numel) of each group in the flat buffers: contiguous, because
  // groups() lists params() in order.
  std::vector<std::pair<int64_t, int64_t>> group_ranges_;
  at::Tensor opt_step_;  // fp32 0-dim: AdamW step count (shared by all params)
  std::vector<at::Tensor> lr_;  // fp32 0-dim per group
  // Loss of the last step (mean over micro-steps and ranks), inf/NaN flag of
  // its gradients, count of skipped steps, and the fp16 loss scale.
  at::Tensor loss_, found_inf_, skipped_, scale_, growth_;

  // Static input (grad_accum, micro_batch, T + 1) int64 and its host staging
  // ring (pinned on CUDA), reused once the event of its last copy passed.
  at::Tensor batch_;
  std::vector<at::Tensor> host_batches_;
  std::vector<std::optional<at::cuda::CUDAEvent>> host_events_;
  std::optional<c10::cuda::CUDAStream> stream_;
  std::unique_ptr<at::cuda::CUDAGraph> graph_;
  int64_t eager_steps_ = 0;  // before capture
};

Trainer::Trainer(const TrainOptions& o, TokenSpan train, TokenSpan val,
                 at::Device device)
    : o_(o),
      train_(train),
      val_(val),
      device_(device),
      model_(DimsOf(o), device, o.mup_base_width, o.legacy),
      metrics_(o.metrics_fd, o.dist.rank == 0),
      autocast_(AutocastDtype(o)),
      fp16_(o.precision == "fp16"),
      micro_batch_(MicroBatch(o)),
      rank_(o.dist.rank),
      world_(std::max(o.dist.world_size, 1)),
      zero_(UseZero(o)),
      working_copy_(WorkingCopy(o)),
      fused_adamw_(UseFusedAdamW(o, device)),
      stolen_grads_(UseStolenGrads(o, device)),
      bf16_grads_(UseBf16Grads(o, device)) {
  attention_note_ = SelectAttention(o, device);
  const auto f32 = at::TensorOptions().device(device).dtype(at::kFloat);
  const std::vector<at::Tensor>& params = model_.params();
  int64_t total = 0;
  grad_offsets_.resize(params.size());
  for (size_t i = params.size(); i-- > 0;) {
    grad_offsets_[i] = total;
    total += params[i].numel();
  }
  if (zero_) zero_layout_ = ShardLayout(total, world_, rank_);
  const int64_t padded = zero_ ? zero_layout_.padded : total;
  flat_grad_ = at::zeros({padded}, f32);
  for (size_t i = 0; i < params.size(); ++i) {
    params[i].mutable_grad() =
        flat_grad_.narrow(0, grad_offsets_[i], params[i].numel())
            .view(params[i].sizes());
  }
  if (working_copy_ || zero_) {
    at::NoGradGuard no_grad;
    const auto bf16 = f32.dtype(at::kBFloat16);
    flat_master_ = at::zeros({padded}, f32);
    if (working_copy_) {
      flat_work_ = at::empty({padded}, bf16);
      flat_work_grad_ = at::zeros({padded}, bf16);
    }
    std::vector<at::Tensor> work;
    for (size_t i = 0; i < params.size(); ++i) {
      const int64_t off = grad_offsets_[i], n = params[i].numel();
      at::Tensor master =
          flat_master_.narrow(0, off, n).view(params[i].sizes());
      master.copy_(params[i]);
      params[i].set_(master);
      if (!working_copy_) continue;
      work.push_back(flat_work_.narrow(0, off, n)
                         .view(params[i].sizes())
                         .set_requires_grad(true));
      work.back().mutable_grad() =
          flat_work_grad_.narrow(0, off, n).view(params[i].sizes());
    }
    if (working_copy_) {
      work_model_.emplace(model_.WithParams(work));
      flat_work_.copy_(flat_master_);
    }
  }
  flat_exp_avg_ = at::zeros({zero_ ? zero_layout_.shard : total}, f32);
  flat_exp_avg_sq_ = at::zeros({zero_ ? zero_layout_.shard : total}, f32);
  size_t index = 0;  // of the group's parameter in params()
  for (const ParamGroup& g : model_.groups()) {
    std::vector<at::Tensor> gr;
    std::vector<int64_t> offsets;
    int64_t begin = total, end = 0, numel = 0;
    for (const at::Tensor& p : g.params) {
      TORCH_CHECK(p.is_same(params.at(index)),
                  "groups() not in params() order");
      const int64_t off = grad_offsets_[index++], n = p.numel();
      offsets.push_back(off);
      gr.push_back(p.grad());
      begin = std::min(begin, off);
      end = std::max(end, off + n);
      numel += n;
    }
    TORCH_CHECK(end - begin == numel, "parameter group not contiguous");
    group_ranges_.emplace_back(begin, numel);
    group_offsets_.push_back(std::move(offsets));
    grads_.push_back(std::move(gr));
    lr_.push_back(at::zeros({}, f32));
  }
  if (zero_) {
    group_shards_ = GroupShards(group_ranges_, zero_layout_);
  } else {
    exp_avg_ = ParamViews(flat_exp_avg_);
    exp_avg_sq_ = ParamViews(flat_exp_avg_sq_);
  }
  opt_step_ = at::zeros({}, f32);
  loss_ = at::zeros({}, f32);
  found_inf_ = at::zeros({1}, f32);
  clip_ = at::ones({1}, f32);
  skipped_ = at::zeros({}, f32);
  scale_ = at::full({1}, fp16_ ? 65536.0 : 1.0, f32);
  growth_ = at::zeros({1}, at::TensorOptions().device(device).dtype(at::kInt));
  batch_ = at::zeros({o.grad_accum, micro_batch_, o.context + 1},
                     at::TensorOptions().device(device).dtype(at::kLong));
  const int ring = device.is_cuda() ? 4 : 1;
  for (int i = 0; i < ring; ++i) {
    host_batches_.push_back(at::empty(
        batch_.sizes(),
        at::TensorOptions().dtype(at::kLong).pinned_memory(device.is_cuda())));
    host_events_.emplace_back();
  }
  if (device.is_cuda())
    stream_ = c10::cuda::getStreamFromPool(/*isHighPriority=*/false);
  // The state above was written on the default stream, which stream_ (a pool
  // stream: non-blocking) does not wait for.
  Sync();
}

absl::Status Trainer::Init() {
  if (o_.dist.world_size == 0) return absl::OkStatus();
  StageFn stage;
  if (stolen_grads_) {  // the bucket's fresh bf16 gradients, cast to fp32
    stage = [this](int64_t begin, int64_t n) {
      PackGrads(begin, n, /*to_fp32=*/true);
    };
  } else if (working_copy_) {  // the last micro-step's, bucket by bucket
    stage = [this](int64_t begin, int64_t n) {
      AccumulateWorkGrads(begin, n, /*first=*/o_.grad_accum == 1);
    };
  }
  ASSIGN_OR_RETURN(
      sync_,
      MakeGradSync(o_.dist, device_,
                   working_copy_ ? work_model_->params() : model_.params(),
                   flat_grad_, grad_offsets_, std::move(stage),
                   zero_ ? zero_layout_.shard : 0));
  return absl::OkStatus();
}

std::vector<std::vector<at::Tensor>> Trainer::ParamViews(
    const at::Tensor& flat) const {
  std::vector<std::vector<at::Tensor>> views;
  for (size_t g = 0; g < model_.groups().size(); ++g) {
    std::vector<at::Tensor> v;
    const std::vector<at::Tensor>& params = model_.groups()[g].params;
    for (size_t i = 0; i < params.size(); ++i) {
      v.push_back(flat.narrow(0, group_offsets_[g][i], params[i].numel())
                      .view(params[i].sizes()));
    }
    views.push_back(std::move(v));
  }
  return views;
}

at::Tensor Trainer::GatherToCpu(const at::Tensor& shard) {
  at::Tensor full = at::zeros({zero_layout_.padded}, shard.options());
  full.narrow(0, zero_layout_.begin, zero_layout_.shard).copy_(shard);
  sync_->AllGather(full);
  return full.to(at::kCPU);
}

void Trainer::UploadBatch(int64_t step) {
  const size_t slot = static_cast<size_t>(step) % host_batches_.size();
  if (host_events_[slot]) host_events_[slot]->synchronize();  // long passed
  at::Tensor& host = host_batches_[slot];
  int64_t* dst = host.data_ptr<int64_t>();
  const int64_t t = o_.context, n = static_cast<int64_t>(train_.size());
  const int64_t per_rank = o_.grad_accum * micro_batch_;
  for (int64_t j = 0; j < per_rank;
       ++j) {  // rank r owns [r * per_rank, (r+1) * per_rank)
    const int64_t off = WindowOffset(o_.seed, step, o_.batch_sequences,
                                     rank_ * per_rank + j, n, t);
    train_.CopyTo(static_cast<size_t>(off), static_cast<size_t>(t + 1),
                  dst + j * (t + 1));
  }
  batch_.copy_(host, /*non_blocking=*/true);
  if (device_.is_cuda()) {
    if (!host_events_[slot]) host_events_[slot].emplace();
    host_events_[slot]->record(*stream_);
  }
}

void Trainer::AccumulateWorkGrads(int64_t begin, int64_t n, bool first) {
  at::NoGradGuard no_grad;
  at::Tensor dst = flat_grad_.narrow(0, begin, n);
  const at::Tensor src = flat_work_grad_.narrow(0, begin, n);
  if (first) {
    dst.copy_(src);
  } else {
    dst.add_(src);
  }
}

void Trainer::DeviceStep() {
  const int64_t t = o_.context;
  if (working_copy_) {
    at::NoGradGuard no_grad;
    // the one cast of the weights (the fused step wrote flat_work_ already)
    if (!fused_adamw_) flat_work_.copy_(flat_master_);
  } else {
    flat_grad_.zero_();
  }
  at::Tensor loss_sum;
  for (int64_t micro = 0; micro < o_.grad_accum; ++micro) {
    at::Tensor seqs = batch_[micro];  // (Bm, T + 1)
    if (stolen_grads_) {
      // With .grad undefined, autograd keeps each incoming gradient as it
      // is; PackGrads then copies them into flat_work_grad_ (or a DDP
      // bucket) with one kernel, where accumulating into views of it costs
      // a zero fill plus one add kernel per parameter (twice the traffic).
      for (const at::Tensor& p : work_model_->params())
        p.mutable_grad().reset();
    } else if (working_copy_) {
      flat_work_grad_.zero_();
    }
    at::Tensor loss;
    {
      AutocastGuard autocast(working_copy_ ? std::nullopt : autocast_);
      // Without loss scaling d(objective)/d(loss) is the constant 1/G: the
      // fused loss then scales its gradient by a host scalar (vectorised).
      loss = (working_copy_ ? *work_model_ : model_)
                 .Loss(seqs.narrow(1, 0, t), seqs.narrow(1, 1, t),
                       fp16_ ? std::nullopt
                             : std::optional<double>(
                                   1.0 / static_cast<double>(o_.grad_accum)));
    }
    at::Tensor objective = loss * (1.0 / static_cast<double>(o_.grad_accum));
    if (fp16_) objective = objective * scale_[0];
    if (sync_ && micro + 1 == o_.grad_accum) sync_->Arm();
    objective.backward();
    if (bf16_grads_) PackGrads(0, flat_work_grad_.numel(), /*to_fp32=*/false);
    // fp32 accumulation over micro-steps (the gradient sync stages the last)
    if (working_copy_ && !stolen_grads_ &&
        !(sync_ && micro + 1 == o_.grad_accum))
      AccumulateWorkGrads(0, flat_grad_.numel(), /*first=*/micro == 0);
    loss_sum = micro == 0 ? loss.detach() : loss_sum + loss.detach();
  }
  at::NoGradGuard no_grad;
  loss_.copy_(loss_sum / static_cast<double>(o_.grad_accum));
  if (sync_) sync_->Finish(loss_);
  if (fused_adamw_) {
    // found_inf, the clip (global norm to 1) and the step counters in one
    // launch, from the squared norm's partial sums (PackGrads wrote
    // them, or ATen's norm when it could not); the AdamW kernel then skips
    // a step with inf/NaN gradients.
    at::Tensor sumsq = packed_sumsq_;
    if (!packed_) {
      sumsq = (bf16_grads_ ? at::linalg_vector_norm(flat_work_grad_, 2, {},
                                                    false, at::kFloat)
                           : flat_grad_.norm())
                  .square()
                  .reshape({1});
    }
    cuda::StepScalars(sumsq.data_ptr<float>(), sumsq.numel(),
                      found_inf_.data_ptr<float>(), clip_.data_ptr<float>(),
                      opt_step_.data_ptr<float>(), skipped_.data_ptr<float>(),
                      c10::cuda::getCurrentCUDAStream().stream());
    FusedAdamWStep(clip_);
    return;
  }
  // ZeRO-1: this rank's shard of the mean gradient (the rest of flat_grad_
  // was not reduced); the global norm from the shards' sums of squares.
  at::Tensor grad =
      zero_ ? flat_grad_.narrow(0, zero_layout_.begin, zero_layout_.shard)
            : flat_grad_;
  at::Tensor norm;
  if (fp16_) {  // not with ZeRO-1 (options.cc)
    found_inf_.zero_();
    at::_amp_foreach_non_finite_check_and_unscale_({flat_grad_}, found_inf_,
                                                   scale_.reciprocal());
    norm = flat_grad_.norm();
  } else {
    if (zero_) {
      at::Tensor sumsq = grad.square().sum().reshape({1});
      sync_->Sum(sumsq);
      norm = sumsq.sqrt().reshape({});
    } else {
      norm = flat_grad_.norm();
    }
    found_inf_.copy_(at::logical_not(at::isfinite(norm)).reshape({1}));
  }
  // Clip the global gradient norm to 1 (no host sync).
  grad.mul_((1.0 / (norm + 1e-6)).clamp_max(1.0));
  opt_step_.add_(1);
  const std::vector<ParamGroup>& groups = model_.groups();
  for (const GroupShard& s : group_shards_) {  // ZeRO-1: this rank's shard
    const int64_t n = s.end - s.begin, local = s.begin - zero_layout_.begin;
    at::_fused_adamw_(
        {flat_master_.narrow(0, s.begin, n)},
        {flat_grad_.narrow(0, s.begin, n)}, {flat_exp_avg_.narrow(0, local, n)},
        {flat_exp_avg_sq_.narrow(0, local, n)}, {}, {opt_step_}, lr_[s.group],
        kBeta1, o_.beta2, groups[s.group].weight_decay ? o_.weight_decay : 0.0,
        kAdamEps, false, false, std::nullopt, found_inf_);
  }
  for (size_t g = 0; g < groups.size() && !zero_; ++g) {
    const std::vector<at::Tensor> steps(groups[g].params.size(), opt_step_);
    // A step with inf/NaN gradients is skipped inside the kernel
    // (found_inf).
    at::_fused_adamw_(groups[g].params, grads_[g], exp_avg_[g], exp_avg_sq_[g],
                      {}, steps, lr_[g], kBeta1, o_.beta2,
                      groups[g].weight_decay ? o_.weight_decay : 0.0, kAdamEps,
                      false, false, std::nullopt, found_inf_);
  }
  opt_step_.sub_(found_inf_[0]);
  skipped_.add_(found_inf_[0]);
  if (zero_) sync_->AllGather(flat_master_);  // every rank's stepped shard
  if (fp16_)
    at::_amp_update_scale_(scale_, growth_, found_inf_, 2.0, 0.5, 2000);
}

void Trainer::PackGrads(int64_t begin, int64_t n, bool to_fp32) {
  at::NoGradGuard no_grad;
  const std::vector<at::Tensor>& params = work_model_->params();
  std::vector<at::Tensor> parts;  // flat order: the last parameter first
  for (size_t i = params.size(); i-- > 0;) {
    if (grad_offsets_[i] < begin || grad_offsets_[i] >= begin + n) continue;
    const at::Tensor& g = params[i].grad();
    parts.push_back(
        g.defined() && g.is_contiguous()
            ? g
            : (g.defined() ? g.contiguous() : at::zeros_like(params[i])));
  }
  std::vector<const void*> srcs;
  std::vector<int64_t> sizes;
  for (const at::Tensor& p : parts) {
    srcs.push_back(p.data_ptr());
    sizes.push_back(p.numel());
  }
  const int count = static_cast<int>(srcs.size());
  at::Tensor dst = (to_fp32 ? flat_grad_ : flat_work_grad_).narrow(0, begin, n);
  float* sumsq = nullptr;
  if (!to_fp32) {  // all of them: the norm's partial sums too
    if (!packed_sumsq_.defined()) {
      packed_sumsq_ = at::empty({cuda::PackBf16Blocks(sizes.data(), count)},
                                flat_grad_.options());
    }
    sumsq = packed_sumsq_.data_ptr<float>();
  }
  const bool packed =
      cuda::PackBf16(srcs.data(), sizes.data(), count, dst.data_ptr(), to_fp32,
                     sumsq, c10::cuda::getCurrentCUDAStream().stream());
  if (!to_fp32) packed_ = packed;
  if (!packed) {
    int64_t at = 0;
    for (const at::Tensor& p : parts) {
      dst.narrow(0, at, p.numel()).copy_(p.reshape({-1}));
      at += p.numel();
    }
  }
}

void Trainer::FusedAdamWStep(const at::Tensor& clip) {
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  const std::vector<ParamGroup>& groups = model_.groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto [begin, n] = group_ranges_[g];
    cuda::FusedAdamWBf16(
        flat_master_.data_ptr<float>() + begin,
        bf16_grads_
            ? static_cast<const void*>(
                  flat_work_grad_.data_ptr<at::BFloat16>() + begin)
            : static_cast<const void*>(flat_grad_.data_ptr<float>() + begin),
        !bf16_grads_, flat_exp_avg_.data_ptr<float>() + begin,
        flat_exp_avg_sq_.data_ptr<float>() + begin,
        flat_work_.data_ptr<at::BFloat16>() + begin, n,
        lr_[g].data_ptr<float>(), opt_step_.data_ptr<float>(),
        clip.data_ptr<float>(), found_inf_.data_ptr<float>(), kBeta1, o_.beta2,
        groups[g].weight_decay ? o_.weight_decay : 0.0, kAdamEps, stream);
  }
}

void Trainer::TrainStep(int64_t step) {
  std::optional<c10::cuda::CUDAStreamGuard> on_stream;
  if (stream_) on_stream.emplace(*stream_);
  UploadBatch(step);
  const double lr = LearningRate(o_, step);
  for (size_t g = 0; g < lr_.size(); ++g)
    lr_[g].fill_(lr * model_.groups()[g].lr_scale);
  if (graph_) {
    graph_->replay();
    return;
  }
  const bool capture = device_.is_cuda() && o_.cuda_graphs && eager_steps_ >= 2;
  if (!capture) {
    DeviceStep();
    ++eager_steps_;
    return;
  }
  // Warm-up ran on this stream (cuBLAS/cuDNN plans exist); free its cached
  // blocks so the graph's private pool does not double the activations.
  stream_->synchronize();
  c10::cuda::CUDACachingAllocator::emptyCache();
  graph_ = std::make_unique<at::cuda::CUDAGraph>();
  graph_->capture_begin();
  DeviceStep();
  graph_->capture_end();
  graph_->replay();  // capture records, it does not run
}

double Trainer::Validate() {
  std::optional<c10::cuda::CUDAStreamGuard> on_stream;
  if (stream_) on_stream.emplace(*stream_);
  at::NoGradGuard no_grad;
  const int64_t b = micro_batch_;
  const int64_t windows = o_.eval_batches * b;
  const int64_t span = static_cast<int64_t>(val_.size()) - o_.context - 1;
  const int64_t t = o_.context;
  at::Tensor total =
      at::zeros({}, at::TensorOptions().device(device_).dtype(at::kFloat));
  at::Tensor host = at::empty({b, t + 1}, at::kLong);
  for (int64_t k = 0; k < o_.eval_batches; ++k) {
    // The same evenly spaced windows for every trial, so losses compare
    // (every rank evaluates all of them).
    int64_t* dst = host.data_ptr<int64_t>();
    for (int64_t i = 0; i < b; ++i) {
      const int64_t off = (k * b + i) * span / windows;
      val_.CopyTo(static_cast<size_t>(off), static_cast<size_t>(t + 1),
                  dst + i * (t + 1));
    }
    at::Tensor seqs = host.to(device_);
    AutocastGuard autocast(autocast_);
    total += model_.Loss(seqs.narrow(1, 0, t), seqs.narrow(1, 1, t));
  }
  total /= static_cast<double>(o_.eval_batches);
  if (sync_) sync_->Mean(total);
  return total.item<double>();
}

// Which fused SDPA kernel runs depends on the runtime cuDNN (research §2.2).
std::string Trainer::AttentionBackend() const {
  if (!device_.is_cuda()) return "";
  const int64_t heads = o_.n_heads, head_dim = o_.d_model / o_.n_heads;
  at::Tensor q = at::zeros({1, heads, o_.context, head_dim},
                           at::TensorOptions().device(device_).dtype(
                               autocast_.value_or(at::kFloat)));
  const int64_t choice =
      at::_fused_sdp_choice(q, q, q, {}, 0.0, /*is_causal=*/true);
  static constexpr const char* kNames[] = {"math", "flash", "efficient",
                                           "cudnn", "overrideable"};
  return choice >= 0 && choice < 5 ? kNames[choice]
                                   : absl::StrCat("unknown ", choice);
}

BenchResult Trainer::Bench(int64_t warmup_steps, double peak_flops) {
  const double call_unix = UnixNow();
  BenchResult r;
  r.attention_backend = AttentionBackend();
  TrainStep(0);
  Sync();
  r.start_from_shell = o_.start_time_unix_s > 0;
  r.first_step_s =
      UnixNow() - (r.start_from_shell ? o_.start_time_unix_s : call_unix);
  for (int64_t step = 1; step < warmup_steps; ++step) TrainStep(step);
  Sync();
  if (device_.is_cuda())
    c10::cuda::CUDACachingAllocator::resetPeakStats(device_.index());
  const auto start = Clock::now();
  for (int64_t step = 0; step < o_.steps; ++step)
    TrainStep(warmup_steps + step);
  Sync();
  const double secs = std::max(Seconds(start), 1e-9);
  const ParamCounts counts = CountParams(DimsOf(o_));
  r.n_params = model_.NumParams();
  r.n_non_embedding = counts.n_non_embedding;
  r.n_matmul = counts.n_matmul;
  r.flops_per_token = counts.flops_per_token;
  r.steps_per_s = static_cast<double>(o_.steps) / secs;
  r.ms_per_step = 1e3 / r.steps_per_s;
  r.tokens_per_s =
      r.steps_per_s * static_cast<double>(o_.batch_sequences * o_.context);
  r.flops_per_s = r.tokens_per_s * counts.flops_per_token;
  r.mfu = r.flops_per_s / peak_flops;
  if (device_.is_cuda()) {
    const auto stats =
        c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index());
    constexpr size_t kAll =
        static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    r.peak_allocated_gib =
        static_cast<double>(stats.allocated_bytes[kAll].peak) / (1 << 30);
    r.peak_reserved_gib =
        static_cast<double>(stats.reserved_bytes[kAll].peak) / (1 << 30);
  }
  return r;
}

std::string Trainer::Profile(int64_t warmup_steps,
                             const std::string& trace_path) {
  namespace prof = torch::autograd::profiler;
  for (int64_t step = 0; step < warmup_steps; ++step) TrainStep(step);
  Sync();
  prof::ProfilerConfig config(prof::ProfilerState::KINETO,
                              /*report_input_shapes=*/false,
                              /*profile_memory=*/true);
  std::set<prof::ActivityType> activities{prof::ActivityType::CPU};
  if (device_.is_cuda()) activities.insert(prof::ActivityType::CUDA);
  prof::prepareProfiler(config, activities);
  prof::enableProfiler(config, activities);
  for (int64_t step = 0; step < o_.steps; ++step)
    TrainStep(warmup_steps + step);
  Sync();
  std::unique_ptr<prof::ProfilerResult> result = prof::disableProfiler();
  result->save(trace_path);
  // Top kernels by total device time.
  std::map<std::string, std::pair<uint64_t, int64_t>> by_name;  // ns, count
  uint64_t total_ns = 0;
  for (const auto& e : result->events()) {
    if (e.deviceType() != c10::DeviceType::CUDA) continue;
    auto& [ns, n] = by_name[e.name()];
    ns += e.durationNs();
    ++n;
    total_ns += e.durationNs();
  }
  std::vector<std::pair<uint64_t, std::string>> top;
  for (const auto& [name, v] : by_name) top.push_back({v.first, name});
  std::sort(top.rbegin(), top.rend());
  std::string table = absl::StrFormat(
      "%d steps, device time %.3f ms/step, %d distinct kernels\n", o_.steps,
      total_ns / 1e6 / o_.steps, by_name.size());
  for (size_t i = 0; i < std::min<size_t>(top.size(), 40); ++i) {
    const auto& [ns, name] = top[i];
    table +=
        absl::StrFormat("%6.2f%% %9.3f ms/step %6d x/step  %s\n",
                        100.0 * ns / total_ns, ns / 1e6 / o_.steps,
                        by_name[name].second / o_.steps, name.substr(0, 150));
  }
  return table;
}

// Reads the last loss (a device sync) and writes the metrics and stderr lines.
absl::Status Trainer::LogTrainStep(int64_t done, double lr, double tokens,
                                   Clock::time_point since) {
  // The step ran (or replayed) on stream_; item() below reads on the current
  // stream, so wait for stream_ first or the loss is several steps stale.
  if (stream_) stream_->synchronize();
  const double tokens_per_s = tokens / std::max(Seconds(since), 1e-9);
  const double loss = loss_.item<double>();
  const auto skipped = static_cast<int64_t>(skipped_.item<double>());
  if (!std::isfinite(loss) && !fp16_) {
    return absl::InternalError(absl::StrCat("train loss is ", loss, " at step ",
                                            done, ": diverged (lower --lr?)"));
  }
  std::string extra;
  if (fp16_)
    extra = absl::StrFormat(R"(, "loss_scale": %.6g)", scale_.item<double>());
  if (std::isfinite(loss)) {
    metrics_.Line(absl::StrFormat(
        R"({"step": %d, "train_loss": %.9g, "lr": %.6g, "tokens_per_s": %.1f, )"
        R"("skipped_steps": %d%s})",
        done, loss, lr, tokens_per_s, skipped, extra));
  }
  if (rank_ == 0) {
    std::fprintf(
        stderr,
        "step %6lld/%lld  loss %.4f  lr %.3e  %.0f tok/s  skipped %lld\n",
        static_cast<long long>(done), static_cast<long long>(o_.steps), loss,
        lr, tokens_per_s, static_cast<long long>(skipped));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> Trainer::CheckedValidate(int64_t done) {
  const double val = Validate();
  if (!std::isfinite(val)) {
    return absl::InternalError(
        absl::StrCat("val loss is ", val, " at step ", done));
  }
  return val;
}

template <typename T>
std::span<const char> Bytes(const T& v) {
  return {reinterpret_cast<const char*>(&v), sizeof v};
}

std::span<const char> Bytes(const at::Tensor& t) {  // contiguous CPU
  return {static_cast<const char*>(t.data_ptr()), t.nbytes()};
}

std::vector<BlobView> Trainer::StateBlobs(int64_t done,
                                          std::vector<at::Tensor>& keep) {
  std::vector<BlobView> blobs;
  keep.clear();
  keep.reserve(4 * model_.params().size() + 11);
  // The step count, as a tensor so that its bytes outlive this call.
  keep.push_back(at::tensor({done}, at::TensorOptions().dtype(at::kLong)));
  blobs.push_back({"steps_done", Bytes(keep.back())});
  auto add = [&](std::string name, const at::Tensor& t) {
    keep.push_back(t.detach().to(at::kCPU).contiguous());
    blobs.push_back({std::move(name), Bytes(keep.back())});
  };
  // ZeRO-1: the moments gathered whole, so the checkpoint is the one of an
  // unsharded run (either resumes the other's).
  std::vector<std::vector<at::Tensor>> m = exp_avg_, v = exp_avg_sq_;
  if (zero_) {
    keep.push_back(GatherToCpu(flat_exp_avg_));
    m = ParamViews(keep.back());
    keep.push_back(GatherToCpu(flat_exp_avg_sq_));
    v = ParamViews(keep.back());
  }
  for (size_t g = 0; g < model_.groups().size(); ++g) {
    for (size_t i = 0; i < model_.groups()[g].params.size(); ++i) {
      add(absl::StrCat("param/", g, "/", i), model_.groups()[g].params[i]);
      add(absl::StrCat("exp_avg/", g, "/", i), m[g][i]);
      add(absl::StrCat("exp_avg_sq/", g, "/", i), v[g][i]);
    }
  }
  add("opt_step", opt_step_);
  add("skipped", skipped_);
  add("scale", scale_);
  add("growth", growth_);
  return blobs;
}

namespace {

// A hash of a training state's blobs (names and bytes, in order), cut to 52
// bits so that a metrics line's JSON number carries it exactly: a trunk's
// state_hash and its branch's init_state_hash are equal when the branch
// starts from exactly the trunk's state.
double StateHash(const std::vector<BlobView>& blobs) {
  uint64_t h = 0;
  for (const BlobView& b : blobs) {
    h = Checksum64({b.name.data(), b.name.size()}, h);
    h = Checksum64(b.bytes, h);
  }
  return static_cast<double>(h & ((uint64_t{1} << 52) - 1));
}

}  // namespace

absl::Status Trainer::SaveCheckpoint(int64_t done) {
  // ZeRO-1: every rank joins the gather of the moments; rank 0 writes.
  if (rank_ != 0 && !zero_) return absl::OkStatus();
  Sync();
  std::vector<at::Tensor> keep;  // CPU copies the views point into
  std::vector<BlobView> blobs = StateBlobs(done, keep);
  if (rank_ != 0) return absl::OkStatus();
  const std::string& history = metrics_.history();
  blobs.push_back({"metrics_history", {history.data(), history.size()}});
  const std::string path = (std::filesystem::path(o_.checkpoint_dir) /
                            CheckpointFileName(o_.lease_epoch))
                               .string();
  const auto start = Clock::now();
  // Fenced (trainer/checkpoint.h): never over a newer attempt's directory.
  RETURN_IF_ERROR(WriteFencedCheckpoint(o_.checkpoint_dir, o_.lease_epoch,
                                        Fingerprint(o_), blobs,
                                        WatchdogAllowsCommit));
  std::fprintf(
      stderr,
      "isoflop-trainer: checkpoint at step %lld written to %s in %.2f s\n",
      static_cast<long long>(done), path.c_str(), Seconds(start));
  return absl::OkStatus();
}

absl::Status Trainer::SaveKeptCheckpoint(int64_t done) {
  if (rank_ != 0 && !zero_) return absl::OkStatus();
  Sync();
  std::vector<at::Tensor> keep;
  std::vector<BlobView> blobs = StateBlobs(done, keep);
  if (rank_ != 0) return absl::OkStatus();
  const double hash = StateHash(blobs);
  // The history up to here, so that a trunk resumed from this checkpoint
  // re-emits this very line (and the coordinator hears of it again).
  const std::string line = absl::StrFormat(
      R"({"step": %d, "checkpoint_kept": %d, "state_hash": %.0f})", done, done,
      hash);
  const std::string history = absl::StrCat(metrics_.history(), line, "\n");
  blobs.push_back({"metrics_history", {history.data(), history.size()}});
  RETURN_IF_ERROR(WriteKeptCheckpoint(o_.checkpoint_dir, o_.lease_epoch, done,
                                      Fingerprint(o_), blobs,
                                      WatchdogAllowsCommit));
  std::fprintf(stderr,
               "isoflop-trainer: kept checkpoint at step %lld written to "
               "%s/%s (state hash %.0f)\n",
               static_cast<long long>(done), o_.checkpoint_dir.c_str(),
               KeptCheckpointFileName(done).c_str(), hash);
  // Announced only once on disk: a branch may start from it now.
  metrics_.Line(line);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Trainer::Restore(const std::string& path,
                                         const std::vector<Blob>& blobs,
                                         bool with_history) {
  std::map<std::string, const Blob*> by_name;
  for (const Blob& b : blobs) by_name[b.name] = &b;
  auto get = [&](const std::string& name,
                 size_t bytes) -> absl::StatusOr<const Blob*> {
    auto it = by_name.find(name);
    if (it == by_name.end() || it->second->bytes.size() != bytes) {
      return absl::DataLossError(absl::StrCat("checkpoint ", path, ": blob ",
                                              name,
                                              " missing or of the wrong size"));
    }
    return it->second;
  };
  auto restore = [&](const std::string& name,
                     const at::Tensor& dst) -> absl::Status {
    ASSIGN_OR_RETURN(const Blob* b, get(name, dst.nbytes()));
    at::Tensor cpu =
        at::empty(dst.sizes(), at::TensorOptions().dtype(dst.scalar_type()));
    std::memcpy(cpu.data_ptr(), b->bytes.data(), b->bytes.size());
    at::NoGradGuard no_grad;
    dst.detach().copy_(cpu);
    return absl::OkStatus();
  };
  int64_t done = 0;
  ASSIGN_OR_RETURN(const Blob* steps_blob, get("steps_done", sizeof done));
  std::memcpy(&done, steps_blob->bytes.data(), sizeof done);
  // ZeRO-1: every rank reads the whole moments and keeps its shard.
  std::vector<std::vector<at::Tensor>> m = exp_avg_, v = exp_avg_sq_;
  at::Tensor m_full, v_full;
  if (zero_) {
    m_full = at::zeros({zero_layout_.padded}, at::kFloat);
    v_full = at::zeros({zero_layout_.padded}, at::kFloat);
    m = ParamViews(m_full);
    v = ParamViews(v_full);
  }
  for (size_t g = 0; g < model_.groups().size(); ++g) {
    for (size_t i = 0; i < model_.groups()[g].params.size(); ++i) {
      RETURN_IF_ERROR(restore(absl::StrCat("param/", g, "/", i),
                              model_.groups()[g].params[i]));
      RETURN_IF_ERROR(restore(absl::StrCat("exp_avg/", g, "/", i), m[g][i]));
      RETURN_IF_ERROR(restore(absl::StrCat("exp_avg_sq/", g, "/", i), v[g][i]));
    }
  }
  if (zero_) {
    flat_exp_avg_.copy_(
        m_full.narrow(0, zero_layout_.begin, zero_layout_.shard));
    flat_exp_avg_sq_.copy_(
        v_full.narrow(0, zero_layout_.begin, zero_layout_.shard));
  }
  if (working_copy_) {  // fused_adamw_ relies on it; the others re-cast
    at::NoGradGuard no_grad;
    flat_work_.copy_(flat_master_);
  }
  RETURN_IF_ERROR(restore("opt_step", opt_step_));
  RETURN_IF_ERROR(restore("skipped", skipped_));
  RETURN_IF_ERROR(restore("scale", scale_));
  RETURN_IF_ERROR(restore("growth", growth_));
  if (done < 0 || done > o_.steps) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", path, ": ", done,
                     " steps done: must be <= --steps = ", o_.steps));
  }
  Sync();  // written on the default stream; the steps run on stream_
  // Checkpoints written before the metrics history have none.
  if (auto it = by_name.find("metrics_history");
      with_history && it != by_name.end()) {
    metrics_.Resume(
        std::string(it->second->bytes.begin(), it->second->bytes.end()),
        o_.replay_metrics_from);
  }
  return done;
}

absl::StatusOr<int64_t> Trainer::LoadCheckpoint() {
  // The newest valid checkpoint of this attempt's epoch or an older one
  // (trainer/checkpoint.h); a corrupt one is skipped for an older one, and
  // refused when none is left.
  std::string path;
  absl::StatusOr<std::vector<Blob>> read = absl::NotFoundError("none");
  absl::Status defect;
  for (const std::string& candidate :
       ResumeCandidates(o_.checkpoint_dir, o_.lease_epoch)) {
    path = candidate;
    read = ReadCheckpoint(path, Fingerprint(o_));
    if (!absl::IsDataLoss(read.status())) break;
    std::fprintf(stderr, "isoflop-trainer: warning: %s\n",
                 std::string(read.status().message()).c_str());
    if (defect.ok()) defect = read.status();
  }
  if (absl::IsDataLoss(read.status())) return defect;
  if (!read.ok() && !absl::IsNotFound(read.status())) return read.status();
  // A trunk also resumes from its newest kept checkpoint when that is
  // further on (a kill -9 between timed checkpoints loses only the steps
  // since the last kept one).
  auto steps_of = [](const std::vector<Blob>& blobs) -> int64_t {
    for (const Blob& b : blobs) {
      int64_t done = -1;
      if (b.name == "steps_done" && b.bytes.size() == sizeof done) {
        std::memcpy(&done, b.bytes.data(), sizeof done);
        return done;
      }
    }
    return -1;
  };
  for (auto it = o_.save_at_steps.rbegin(); it != o_.save_at_steps.rend();
       ++it) {
    if (read.ok() && *it <= steps_of(*read)) break;
    const std::string kept =
        (std::filesystem::path(o_.checkpoint_dir) / KeptCheckpointFileName(*it))
            .string();
    absl::StatusOr<std::vector<Blob>> k = ReadCheckpoint(kept, Fingerprint(o_));
    if (k.ok() && steps_of(*k) == *it) {
      path = kept;
      read = std::move(k);
      break;
    }
    if (!absl::IsNotFound(k.status())) {
      std::fprintf(stderr, "isoflop-trainer: warning: %s\n",
                   k.ok() ? "kept checkpoint with another step count"
                          : std::string(k.status().message()).c_str());
    }
  }
  if (absl::IsNotFound(read.status())) return 0;  // nothing to resume: start
  ASSIGN_OR_RETURN(const int64_t done,
                   Restore(path, *read, /*with_history=*/true));
  std::fprintf(stderr, "isoflop-trainer: resumed from %s after step %lld\n",
               path.c_str(), static_cast<long long>(done));
  return done;
}

absl::StatusOr<int64_t> Trainer::InitFromTrunk() {
  const std::string path = (std::filesystem::path(o_.init_from) /
                            KeptCheckpointFileName(o_.init_step))
                               .string();
  absl::StatusOr<std::vector<Blob>> read =
      ReadCheckpoint(path, Fingerprint(o_));
  if (absl::IsNotFound(read.status())) {
    return absl::UnavailableError(absl::StrCat(
        "--init-from ", o_.init_from, ": the trunk checkpoint ", path,
        " is not visible here (the checkpoint root must be a filesystem "
        "every worker mounts, docs/faults.md \"Trunks and branches\")"));
  }
  if (!read.ok()) return read.status();
  ASSIGN_OR_RETURN(const int64_t done,
                   Restore(path, *read, /*with_history=*/false));
  if (done != o_.init_step) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", path, ": ", done,
                     " steps done: must equal --init-step = ", o_.init_step));
  }
  std::vector<at::Tensor> keep;
  const double hash = StateHash(StateBlobs(done, keep));
  std::fprintf(stderr,
               "isoflop-trainer: started from the trunk checkpoint %s at step "
               "%lld (state hash %.0f)\n",
               path.c_str(), static_cast<long long>(done), hash);
  if (rank_ == 0) {
    metrics_.Line(absl::StrFormat(R"({"step": %d, "init_state_hash": %.0f})",
                                  done, hash));
  }
  return done;
}

absl::Status Trainer::Run() {
  const double tokens_per_step =
      static_cast<double>(o_.batch_sequences * o_.context);
  const ParamCounts counts = CountParams(DimsOf(o_));
  const double epochs = static_cast<double>(o_.steps) * tokens_per_step /
                        static_cast<double>(train_.size());
  if (rank_ == 0) {
    std::fprintf(
        stderr,
        "isoflop-trainer: N_total %lld, N_non_embedding %lld, N_matmul %lld, "
        "%.4g FLOPs/token (%s); %s (%s%s), %lld steps of %.0f tokens, %d "
        "rank(s)\n",
        static_cast<long long>(counts.n_total),
        static_cast<long long>(counts.n_non_embedding),
        static_cast<long long>(counts.n_matmul), counts.flops_per_token,
        FlopConventionText().c_str(), o_.device.c_str(), o_.precision.c_str(),
        device_.is_cuda() && o_.cuda_graphs ? ", CUDA graph" : "",
        static_cast<long long>(o_.steps), tokens_per_step, world_);
    // Windows are drawn at random, so "epochs" is the expected number of
    // times each token is seen. Past ~4 repeats the loss no longer measures
    // what fresh data would give (Muennighoff et al. 2023).
    if (epochs > kMaxEpochs) {
      std::fprintf(stderr,
                   "isoflop-trainer: warning: %.1f epochs of %s (%zu tokens): "
                   "more than %.0f repeats of the data; the loss will not "
                   "measure fresh data: use a larger dataset or smaller "
                   "budgets\n",
                   epochs, o_.data_dir.c_str(), train_.size(), kMaxEpochs);
    }
    if (device_.is_cuda()) {
      std::fprintf(stderr, "isoflop-trainer: attention backend %s%s\n",
                   AttentionBackend().c_str(), attention_note_.c_str());
    }
  }
  int64_t start_step = 0;
  if (o_.resume) {
    ASSIGN_OR_RETURN(start_step, LoadCheckpoint());
  }
  // A branch starts from its trunk's state unless it has its own.
  if (start_step == 0 && !o_.init_from.empty()) {
    ASSIGN_OR_RETURN(start_step, InitFromTrunk());
  }
  // A resumed attempt reported it already (or replayed it from the
  // checkpoint's history in LoadCheckpoint).
  // Measured: the bytes of the moments' buffers this rank allocated (half
  // of them per rank with ZeRO-1 over 2 ranks).
  std::fprintf(stderr,
               "isoflop-trainer: rank %d: optimizer state (AdamW moments) "
               "%lld bytes, ZeRO stage %d\n",
               rank_, static_cast<long long>(OptimizerStateBytes()),
               zero_ ? o_.zero_stage : 0);
  if (rank_ == 0 && start_step == 0) {
    metrics_.Line(absl::StrFormat(
        R"({"step": 0, "epochs": %.4f, "optimizer_state_bytes": %d})", epochs,
        OptimizerStateBytes()));
  }
  auto interval_start = Clock::now();
  const auto run_start = interval_start;
  auto last_checkpoint = interval_start;
  bool at_risk_saved = false;  // checkpointed since the lease looked lost
  int64_t interval_steps = 0;
  double eval_s = 0;  // validation time, kept out of tokens/s
  for (int64_t done = start_step + 1; done <= o_.steps; ++done) {
    TrainStep(done - 1);
    ++interval_steps;
    if (std::binary_search(o_.save_at_steps.begin(), o_.save_at_steps.end(),
                           done)) {
      RETURN_IF_ERROR(SaveKeptCheckpoint(done));
    }
    if (done == start_step + 1 && o_.start_time_unix_s > 0 && rank_ == 0) {
      Sync();
      std::fprintf(
          stderr,
          "isoflop-trainer: first step done %.3f s after process start\n",
          UnixNow() - o_.start_time_unix_s);
    }
    if (done % o_.log_every == 0 || done == o_.steps) {
      RETURN_IF_ERROR(LogTrainStep(done, LearningRate(o_, done - 1),
                                   interval_steps * tokens_per_step,
                                   interval_start));
      interval_start = Clock::now();
      interval_steps = 0;
    }
    if (o_.eval_every > 0 && done % o_.eval_every == 0 && done < o_.steps) {
      const auto eval_start = Clock::now();
      ASSIGN_OR_RETURN(const double val, CheckedValidate(done));
      metrics_.Line(
          absl::StrFormat(R"({"step": %d, "val_loss": %.6f})", done, val));
      eval_s += Seconds(eval_start);
      interval_start = Clock::now();
    }
    // This rank's reasons to checkpoint (or stop) here; under ZeRO-1 every
    // rank acts on those of any rank, since all of them join the gather.
    int flags = metrics_.reader_gone() ? kReaderGone : 0;
    if (!o_.checkpoint_dir.empty()) {
      if (g_sigterm.load()) flags |= kSigterm;
      if (g_watchdog != nullptr && g_watchdog->AtRisk()) flags |= kAtRisk;
      if (o_.checkpoint_every_min > 0 &&
          Seconds(last_checkpoint) >= 60 * o_.checkpoint_every_min)
        flags |= kTimerDue;
    }
    if (zero_) flags = sync_->AnyFlags(flags);
    if (flags & kReaderGone) {  // the worker died; training on is waste
      if (!o_.checkpoint_dir.empty()) RETURN_IF_ERROR(SaveCheckpoint(done));
      return absl::UnavailableError(absl::StrCat(
          "--metrics-fd ", o_.metrics_fd, ": the reader is gone (EPIPE); ",
          o_.checkpoint_dir.empty() ? "stopped" : "checkpointed",
          " after step ", done));
    }
    if (!o_.checkpoint_dir.empty()) {
      if (flags & kSigterm) {
        RETURN_IF_ERROR(SaveCheckpoint(done));
        return absl::CancelledError(
            absl::StrCat("SIGTERM: checkpointed after step ", done));
      }
      // The lease looks lost (unrenewed for half the watchdog timeout):
      // checkpoint once while this attempt still may, so that a fenced
      // attempt loses no steps (docs/faults.md "Split brain").
      bool saved = false;
      if (flags & kAtRisk) {
        if (!at_risk_saved) {
          RETURN_IF_ERROR(SaveCheckpoint(done));
          at_risk_saved = saved = true;
          last_checkpoint = Clock::now();
        }
      } else {
        at_risk_saved = false;
      }
      if ((flags & kTimerDue) && !saved) {
        RETURN_IF_ERROR(SaveCheckpoint(done));
        last_checkpoint = Clock::now();
      }
    }
  }
  const double total_s = Seconds(run_start);
  const double mean_tokens_per_s = (o_.steps - start_step) * tokens_per_step /
                                   std::max(total_s - eval_s, 1e-9);
  ASSIGN_OR_RETURN(const double val, CheckedValidate(o_.steps));
  if (rank_ == 0 && !o_.checkpoint_dir.empty()) {
    // The final weights, for generate and eval (a worker keeps this file),
    // on disk before the final metrics line announces success.
    const std::string path =
        (std::filesystem::path(o_.checkpoint_dir) / kModelFileName).string();
    // A stale attempt writes no final weights into a newer one's directory.
    RETURN_IF_ERROR(WatchdogAllowsCommit());
    RETURN_IF_ERROR(CheckCheckpointFence(o_.checkpoint_dir, o_.lease_epoch));
    RETURN_IF_ERROR(
        WriteModelFile(path, model_, o_.mup_base_width,
                       o_.model_dtype == "fp32" ? at::kFloat : at::kBFloat16));
    std::fprintf(stderr, "isoflop-trainer: final weights (%s) written to %s\n",
                 o_.model_dtype.c_str(), path.c_str());
  }
  metrics_.Line(absl::StrFormat(
      R"({"step": %d, "val_loss": %.6f, "tokens_per_s": %.1f, "final": 1})",
      o_.steps, val, mean_tokens_per_s));
  if (rank_ == 0) {
    std::fprintf(stderr,
                 "isoflop-trainer: done: %lld steps, %.0f tokens in %.1f s = "
                 "%.0f tok/s; "
                 "val_loss %.4f\n",
                 static_cast<long long>(o_.steps - start_step),
                 (o_.steps - start_step) * tokens_per_step, total_s,
                 mean_tokens_per_s, val);
  }
  if (sync_) sync_->Shutdown();
  return absl::OkStatus();
}

absl::Status CheckDevice(const TrainOptions& o) {
  if (o.device == "cuda" && !torch::cuda::is_available()) {
    return absl::InvalidArgumentError(
        "--device = cuda: no CUDA device is visible");
  }
  return absl::OkStatus();
}

// The rank's device (LOCAL_RANK on CUDA), made current.
at::Device DeviceOf(const TrainOptions& o) {
  if (o.device != "cuda") return at::kCPU;
  const auto index = static_cast<c10::DeviceIndex>(o.dist.local_rank);
  c10::cuda::set_device(index);
  return {at::kCUDA, index};
}

// Random token ids standing in for a dataset (bench and profile), as wide as
// a token file of the vocabulary would hold them.
struct RandomTokens {
  explicit RandomTokens(const TrainOptions& o) {
    std::mt19937_64 rng(o.seed);
    std::uniform_int_distribution<int64_t> id(0, o.vocab_size - 1);
    const auto n =
        static_cast<size_t>(std::max<int64_t>(1 << 20, 4 * (o.context + 2)));
    if (DtypeForVocab(static_cast<uint64_t>(o.vocab_size)) ==
        TokenDtype::kUint32) {
      u32.resize(n);
      for (uint32_t& t : u32) t = static_cast<uint32_t>(id(rng));
    } else {
      u16.resize(n);
      for (uint16_t& t : u16) t = static_cast<uint16_t>(id(rng));
    }
  }
  TokenSpan span() const { return u32.empty() ? TokenSpan(u16) : u32; }
  std::vector<uint16_t> u16;
  std::vector<uint32_t> u32;
};

}  // namespace

double LearningRate(const TrainOptions& o, int64_t step) {
  if (step < o.warmup_steps) {
    return o.lr * static_cast<double>(step + 1) /
           static_cast<double>(o.warmup_steps);
  }
  if (o.schedule == "constant") return o.lr;  // a trunk: branches cool down
  const double f = o.min_lr_fraction;
  if (o.schedule == "wsd") {
    const auto decay =
        static_cast<int64_t>(std::llround(o.wsd_decay_fraction * o.steps));
    const int64_t hold_end = std::max(o.warmup_steps, o.steps - decay);
    if (step < hold_end) return o.lr;
    const double progress = std::min(
        1.0,
        static_cast<double>(step - hold_end) /
            static_cast<double>(std::max<int64_t>(1, o.steps - hold_end - 1)));
    return o.lr * (f + (1.0 - f) * (1.0 - std::sqrt(progress)));
  }
  const int64_t decay_steps =
      std::max<int64_t>(1, o.steps - o.warmup_steps - 1);
  const double progress =
      std::min(1.0, static_cast<double>(step - o.warmup_steps) /
                        static_cast<double>(decay_steps));
  const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return o.lr * (f + (1.0 - f) * cosine);
}

absl::Status Train(const TrainOptions& o) {
  // First: the lease may be lost while LibTorch starts.
  std::unique_ptr<Watchdog> watchdog;
  if (o.watchdog_fd >= 0) {
    const int flags = fcntl(o.watchdog_fd, F_GETFL);
    if (flags < 0 || (flags & O_ACCMODE) == O_WRONLY) {
      return absl::InvalidArgumentError(
          absl::StrCat("--watchdog-fd = ", o.watchdog_fd,
                       ": must be a file descriptor open for reading"));
    }
    watchdog = std::make_unique<Watchdog>(
        o.watchdog_fd,
        static_cast<int64_t>(std::llround(o.watchdog_timeout_s * 1e9)),
        BootTimeNs, FenceProcess);
    watchdog->Start();
    g_watchdog = watchdog.get();
  }
  struct Unset {  // destroyed before `watchdog`
    ~Unset() { g_watchdog = nullptr; }
  } unset;
  RETURN_IF_ERROR(CheckDevice(o));
  if (o.metrics_fd >= 0) {
    const int flags = fcntl(o.metrics_fd, F_GETFL);
    if (flags < 0 || (flags & O_ACCMODE) == O_RDONLY) {
      return absl::InvalidArgumentError(
          absl::StrCat("--metrics-fd = ", o.metrics_fd,
                       ": must be a file descriptor open for writing"));
    }
  }
  ASSIGN_OR_RETURN(TokenFile train, OpenSplit(o, "train.bin"));
  ASSIGN_OR_RETURN(TokenFile val, OpenSplit(o, "val.bin"));
  if (!o.checkpoint_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.checkpoint_dir, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("--checkpoint-dir = ", o.checkpoint_dir,
                       ": cannot create: ", ec.message()));
    }
    // This attempt owns the directory from here on: older attempts can no
    // longer commit a checkpoint into it (ABORTED here if a newer one owns
    // it).
    RETURN_IF_ERROR(ClaimCheckpointDir(o.checkpoint_dir, o.lease_epoch));
    struct sigaction sa {};
    sa.sa_handler = OnSigterm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
  }
  // The worker that reads --metrics-fd may die first (kill -9; the kernel then
  // SIGTERMs us through PR_SET_PDEATHSIG). A metrics line written into its
  // closed pipe must fail with EPIPE, not kill us before the checkpoint is on
  // disk: the training loop then checkpoints and stops.
  signal(SIGPIPE, SIG_IGN);
  at::set_num_threads(o.threads);
  torch::manual_seed(o.seed);
  const at::Device device = DeviceOf(o);
  Trainer trainer(o, train.tokens(), val.tokens(), device);
  RETURN_IF_ERROR(trainer.Init());
  return trainer.Run();
}

absl::StatusOr<BenchResult> Bench(const TrainOptions& o, int64_t warmup_steps,
                                  double peak_flops) {
  RETURN_IF_ERROR(CheckDevice(o));
  if (warmup_steps < 0 || !(peak_flops > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--untimed-steps = ", warmup_steps,
        ", --peak-tflops = ", peak_flops / 1e12, ": must be >= 0 and > 0"));
  }
  at::set_num_threads(o.threads);
  torch::manual_seed(o.seed);
  const RandomTokens tokens(o);
  const at::Device device = DeviceOf(o);
  Trainer trainer(o, tokens.span(), tokens.span(), device);
  RETURN_IF_ERROR(trainer.Init());
  return trainer.Bench(std::max<int64_t>(warmup_steps, 1), peak_flops);
}

absl::StatusOr<std::string> Profile(const TrainOptions& o, int64_t warmup_steps,
                                    const std::string& trace_path) {
  RETURN_IF_ERROR(CheckDevice(o));
  if (trace_path.empty())
    return absl::InvalidArgumentError("--trace: required");
  at::set_num_threads(o.threads);
  torch::manual_seed(o.seed);
  const RandomTokens tokens(o);
  const at::Device device = DeviceOf(o);
  Trainer trainer(o, tokens.span(), tokens.span(), device);
  RETURN_IF_ERROR(trainer.Init());
  return trainer.Profile(warmup_steps, trace_path);
}

}  // namespace isoflop::trainer
