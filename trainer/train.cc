#include "trainer/train.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <fcntl.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numbers>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/token_file.h"
#include "trainer/model.h"

namespace isoflop::trainer {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// bf16 autocast on CUDA for the forward pass. LibTorch has no RAII guard;
// this mirrors torch.autocast.__enter__/__exit__ (research/trainer.md §2.1).
class AutocastGuard {
 public:
  explicit AutocastGuard(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    prev_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    prev_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);  // default is fp16
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCUDA, prev_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, prev_dtype_);
  }

 private:
  bool enabled_;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kBFloat16;
};

// Metrics as one JSON object per line, flushed per line.
class MetricsWriter {
 public:
  explicit MetricsWriter(int fd) : out_(fd < 0 ? stdout : fdopen(fd, "w")) {}
  void Line(const std::string& json) {
    if (out_ == nullptr) return;
    std::fputs(json.c_str(), out_);
    std::fputc('\n', out_);
    std::fflush(out_);
  }

 private:
  FILE* out_;
};

// Copies the (T + 1)-token windows starting at `offsets` into (B, T + 1).
at::Tensor Gather(std::span<const uint16_t> tokens, const std::vector<int64_t>& offsets,
                  int64_t t) {
  at::Tensor out = at::empty({static_cast<int64_t>(offsets.size()), t + 1}, at::kLong);
  int64_t* dst = out.data_ptr<int64_t>();
  const uint16_t* src = tokens.data();
  for (size_t b = 0; b < offsets.size(); ++b) {
    for (int64_t i = 0; i <= t; ++i) dst[b * (t + 1) + i] = src[offsets[b] + i];
  }
  return out;
}

absl::StatusOr<TokenFile> OpenSplit(const TrainOptions& o, const char* name) {
  const std::string path = (std::filesystem::path(o.data_dir) / name).string();
  ASSIGN_OR_RETURN(TokenFile file, TokenFile::Open(path));
  if (file.vocab_size() > o.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": vocab_size = ", file.vocab_size(), ": must be <= --vocab-size = ",
        o.vocab_size, " (the dataset was tokenised with a larger vocabulary)"));
  }
  if (static_cast<int64_t>(file.tokens().size()) < o.context + 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", file.tokens().size(), " tokens: must be >= --context + 2 = ",
        o.context + 2));
  }
  // The header can understate the vocabulary; an id >= V would index past the
  // embedding. One pass over the mapping (a few ms for the KJV).
  const std::span<const uint16_t> tokens = file.tokens();
  const auto it = std::find_if(tokens.begin(), tokens.end(),
                               [&](uint16_t id) { return id >= o.vocab_size; });
  if (it != tokens.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": token[", it - tokens.begin(), "] = ", *it,
        ": must be < --vocab-size = ", o.vocab_size));
  }
  return file;
}

class Trainer {
 public:
  // `train` and `val` (each >= context + 2 ids < vocab_size) outlive this.
  Trainer(const TrainOptions& o, std::span<const uint16_t> train,
          std::span<const uint16_t> val, at::Device device)
      : o_(o), train_(train), val_(val), device_(device),
        model_(ModelDims{o.vocab_size, o.context, o.d_model, o.n_layers, o.n_heads, o.d_ff},
               device),
        rng_(o.seed), metrics_(o.metrics_fd),
        bf16_(o.precision == "bf16") {
    for (const auto* group : {&model_.decay_params(), &model_.no_decay_params()}) {
      for (const at::Tensor& p : *group) {
        exp_avg_.push_back(at::zeros_like(p));
        exp_avg_sq_.push_back(at::zeros_like(p));
        steps_.push_back(at::zeros({}, p.options().requires_grad(false)));
      }
    }
    lr_ = at::zeros({}, at::TensorOptions().device(device).dtype(at::kFloat));
  }

  absl::Status Run();
  // Times o.steps steps after `warmup_steps` untimed ones; no metrics lines.
  BenchResult Bench(int64_t warmup_steps, double peak_flops);

 private:
  std::pair<at::Tensor, at::Tensor> SampleBatch();
  void Step();
  double Validate();
  void LogAttentionBackend() const;
  absl::Status LogTrainStep(int64_t done, double lr, double tokens_per_s);
  absl::StatusOr<double> CheckedValidate(int64_t done);

  const TrainOptions& o_;
  std::span<const uint16_t> train_, val_;
  at::Device device_;
  Gpt model_;
  std::mt19937_64 rng_;
  MetricsWriter metrics_;
  bool bf16_;
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_, steps_;
  at::Tensor lr_, loss_;
};

std::pair<at::Tensor, at::Tensor> Trainer::SampleBatch() {
  std::uniform_int_distribution<int64_t> pick(
      0, static_cast<int64_t>(train_.size()) - o_.context - 1);
  std::vector<int64_t> offsets(o_.batch_sequences);
  for (int64_t& off : offsets) off = pick(rng_);
  at::Tensor batch = Gather(train_, offsets, o_.context).to(device_, /*non_blocking=*/true);
  return {batch.narrow(1, 0, o_.context), batch.narrow(1, 1, o_.context)};
}

void Trainer::Step() {
  auto [inputs, targets] = SampleBatch();
  {
    AutocastGuard autocast(bf16_);
    loss_ = model_.Loss(inputs, targets);
  }
  loss_.backward();
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> params, grads;
  for (const auto* group : {&model_.decay_params(), &model_.no_decay_params()}) {
    for (const at::Tensor& p : *group) {
      params.push_back(p);
      grads.push_back(p.grad());
    }
  }
  // Clip the global gradient norm to 1 on the device (no host sync).
  at::Tensor norm = at::stack(at::_foreach_norm(grads)).norm();
  at::_foreach_mul_(grads, (1.0 / (norm + 1e-6)).clamp_max(1.0));
  at::_foreach_add_(steps_, 1);
  const size_t n_decay = model_.decay_params().size();
  auto slice = [&](const std::vector<at::Tensor>& v, bool decay) {
    return decay ? std::vector<at::Tensor>(v.begin(), v.begin() + n_decay)
                 : std::vector<at::Tensor>(v.begin() + n_decay, v.end());
  };
  for (bool decay : {true, false}) {
    at::_fused_adamw_(slice(params, decay), slice(grads, decay), slice(exp_avg_, decay),
                      slice(exp_avg_sq_, decay), {}, slice(steps_, decay), lr_, 0.9,
                      o_.beta2, decay ? o_.weight_decay : 0.0, 1e-8, false, false);
  }
  for (at::Tensor& p : params) p.mutable_grad() = at::Tensor();  // set to none
}

double Trainer::Validate() {
  at::NoGradGuard no_grad;
  const int64_t windows = o_.eval_batches * o_.batch_sequences;
  const int64_t span = static_cast<int64_t>(val_.size()) - o_.context - 1;
  double total = 0;
  for (int64_t b = 0; b < o_.eval_batches; ++b) {
    // The same evenly spaced windows for every trial, so losses compare.
    std::vector<int64_t> offsets(o_.batch_sequences);
    for (int64_t i = 0; i < o_.batch_sequences; ++i) {
      offsets[i] = (b * o_.batch_sequences + i) * span / windows;
    }
    at::Tensor batch = Gather(val_, offsets, o_.context).to(device_);
    AutocastGuard autocast(bf16_);
    total += model_.Loss(batch.narrow(1, 0, o_.context), batch.narrow(1, 1, o_.context))
                 .item<double>();
  }
  return total / static_cast<double>(o_.eval_batches);
}

// Which fused SDPA kernel runs depends on the runtime cuDNN (research/trainer.md
// §2.2): say which, once.
void Trainer::LogAttentionBackend() const {
  const int64_t heads = o_.n_heads, head_dim = o_.d_model / o_.n_heads;
  at::Tensor q = at::zeros({1, heads, o_.context, head_dim},
                           at::TensorOptions().device(device_).dtype(bf16_ ? at::kBFloat16
                                                                           : at::kFloat));
  const int64_t choice = at::_fused_sdp_choice(q, q, q, {}, 0.0, /*is_causal=*/true);
  static constexpr const char* kNames[] = {"math", "flash", "efficient", "cudnn", "overrideable"};
  std::fprintf(stderr, "isoflop-trainer: attention backend %s (%lld)\n",
               choice >= 0 && choice < 5 ? kNames[choice] : "unknown",
               static_cast<long long>(choice));
}

BenchResult Trainer::Bench(int64_t warmup_steps, double peak_flops) {
  if (device_.is_cuda()) LogAttentionBackend();
  for (int64_t step = 0; step < warmup_steps; ++step) {
    lr_.fill_(LearningRate(o_, step));
    Step();
  }
  (void)loss_.item<double>();  // drain the queue before the clock starts
  const auto start = Clock::now();
  for (int64_t step = 0; step < o_.steps; ++step) {
    lr_.fill_(LearningRate(o_, step));
    Step();
  }
  (void)loss_.item<double>();
  const double secs =
      std::max(std::chrono::duration<double>(Clock::now() - start).count(), 1e-9);
  const ModelDims dims{o_.vocab_size, o_.context, o_.d_model, o_.n_layers, o_.n_heads, o_.d_ff};
  BenchResult r;
  r.n_params = model_.NumParams();
  r.steps_per_s = static_cast<double>(o_.steps) / secs;
  r.tokens_per_s = r.steps_per_s * static_cast<double>(o_.batch_sequences * o_.context);
  r.flops_per_s = r.tokens_per_s * CountParams(dims).flops_per_token;
  r.mfu = r.flops_per_s / peak_flops;
  return r;
}

// Reads the last loss (a device sync) and writes the metrics and stderr lines.
absl::Status Trainer::LogTrainStep(int64_t done, double lr, double tokens_per_s) {
  const double loss = loss_.item<double>();
  if (!std::isfinite(loss)) {
    return absl::InternalError(
        absl::StrCat("train loss is ", loss, " at step ", done, ": diverged (lower --lr?)"));
  }
  metrics_.Line(absl::StrFormat(
      R"({"step": %d, "train_loss": %.6f, "lr": %.6g, "tokens_per_s": %.1f})", done, loss, lr,
      tokens_per_s));
  std::fprintf(stderr, "step %6lld/%lld  loss %.4f  lr %.3e  %.0f tok/s\n",
               static_cast<long long>(done), static_cast<long long>(o_.steps), loss, lr,
               tokens_per_s);
  return absl::OkStatus();
}

absl::StatusOr<double> Trainer::CheckedValidate(int64_t done) {
  const double val = Validate();
  if (!std::isfinite(val)) {
    return absl::InternalError(absl::StrCat("val loss is ", val, " at step ", done));
  }
  return val;
}

absl::Status Trainer::Run() {
  const double tokens_per_step = static_cast<double>(o_.batch_sequences * o_.context);
  std::fprintf(stderr, "isoflop-trainer: %lld parameters on %s (%s), %lld steps of %.0f tokens\n",
               static_cast<long long>(model_.NumParams()), o_.device.c_str(),
               o_.precision.c_str(), static_cast<long long>(o_.steps), tokens_per_step);
  if (device_.is_cuda()) LogAttentionBackend();
  auto interval_start = Clock::now();
  const auto run_start = interval_start;
  int64_t interval_steps = 0;
  double eval_s = 0;  // validation time, kept out of tokens/s
  for (int64_t done = 1; done <= o_.steps; ++done) {
    const double lr = LearningRate(o_, done - 1);
    lr_.fill_(lr);
    Step();
    ++interval_steps;
    if (done % o_.log_every == 0 || done == o_.steps) {
      RETURN_IF_ERROR(LogTrainStep(done, lr, interval_steps * tokens_per_step /
                                                 std::max(Seconds(interval_start), 1e-9)));
      interval_start = Clock::now();
      interval_steps = 0;
    }
    if (o_.eval_every > 0 && done % o_.eval_every == 0 && done < o_.steps) {
      const auto eval_start = Clock::now();
      ASSIGN_OR_RETURN(const double val, CheckedValidate(done));
      metrics_.Line(absl::StrFormat(R"({"step": %d, "val_loss": %.6f})", done, val));
      eval_s += Seconds(eval_start);
      interval_start = Clock::now();
    }
  }
  const double total_s = Seconds(run_start);
  const double mean_tokens_per_s = o_.steps * tokens_per_step / std::max(total_s - eval_s, 1e-9);
  ASSIGN_OR_RETURN(const double val, CheckedValidate(o_.steps));
  metrics_.Line(absl::StrFormat(
      R"({"step": %d, "val_loss": %.6f, "tokens_per_s": %.1f, "final": 1})", o_.steps, val,
      mean_tokens_per_s));
  std::fprintf(stderr, "isoflop-trainer: done: %lld steps, %.0f tokens in %.1f s = %.0f tok/s; "
               "val_loss %.4f\n", static_cast<long long>(o_.steps), o_.steps * tokens_per_step,
               total_s, mean_tokens_per_s, val);
  return absl::OkStatus();
}

}  // namespace

double LearningRate(const TrainOptions& o, int64_t step) {
  if (step < o.warmup_steps) {
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  }
  const int64_t decay_steps = std::max<int64_t>(1, o.steps - o.warmup_steps - 1);
  const double progress =
      std::min(1.0, static_cast<double>(step - o.warmup_steps) / static_cast<double>(decay_steps));
  const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return o.lr * (o.min_lr_fraction + (1.0 - o.min_lr_fraction) * cosine);
}

absl::Status Train(const TrainOptions& o) {
  if (o.device == "cuda" && !torch::cuda::is_available()) {
    return absl::InvalidArgumentError("--device = cuda: no CUDA device is visible");
  }
  if (o.metrics_fd >= 0) {
    const int flags = fcntl(o.metrics_fd, F_GETFL);
    if (flags < 0 || (flags & O_ACCMODE) == O_RDONLY) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--metrics-fd = ", o.metrics_fd, ": must be a file descriptor open for writing"));
    }
  }
  ASSIGN_OR_RETURN(TokenFile train, OpenSplit(o, "train.bin"));
  ASSIGN_OR_RETURN(TokenFile val, OpenSplit(o, "val.bin"));
  at::set_num_threads(o.threads);
  torch::manual_seed(o.seed);
  const at::Device device(o.device == "cuda" ? at::kCUDA : at::kCPU);
  Trainer trainer(o, train.tokens(), val.tokens(), device);
  return trainer.Run();
}

absl::StatusOr<BenchResult> Bench(const TrainOptions& o, int64_t warmup_steps,
                                  double peak_flops) {
  if (o.device == "cuda" && !torch::cuda::is_available()) {
    return absl::InvalidArgumentError("--device = cuda: no CUDA device is visible");
  }
  if (warmup_steps < 0 || !(peak_flops > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--untimed-steps = ", warmup_steps, ", --peak-tflops = ", peak_flops / 1e12,
        ": must be >= 0 and > 0"));
  }
  at::set_num_threads(o.threads);
  torch::manual_seed(o.seed);
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int> id(0, static_cast<int>(o.vocab_size) - 1);
  std::vector<uint16_t> tokens(std::max<int64_t>(1 << 20, 4 * (o.context + 2)));
  for (uint16_t& t : tokens) t = static_cast<uint16_t>(id(rng));
  const at::Device device(o.device == "cuda" ? at::kCUDA : at::kCPU);
  Trainer trainer(o, tokens, tokens, device);
  return trainer.Bench(warmup_steps, peak_flops);
}

}  // namespace isoflop::trainer
