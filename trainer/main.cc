// isoflop-trainer: trains one model for one token budget (DESIGN.md §2, §6).
// Parses flags and maps the outcome to the exit-code contract.
#include <cstdio>
#include <exception>
#include <string>

#include "CLI/CLI.hpp"
#include "common/exit_codes.h"
#include "common/flops.h"
#include "common/status_macros.h"
#include "trainer/options.h"
#include "trainer/train.h"

namespace {

int ExitCodeFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk: return isoflop::kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound: return isoflop::kExitInvalidConfig;
    case absl::StatusCode::kUnavailable: return isoflop::kExitRetryable;
    default: return 1;
  }
}

// Flags shared by `train` and `bench`: the model, the batch and the optimizer.
void AddModelFlags(CLI::App* train, isoflop::trainer::TrainOptions& o) {
  train->add_option("--vocab-size", o.vocab_size, "vocabulary size V")->required();
  train->add_option("--context", o.context, "sequence length T")->required();
  train->add_option("--d-model", o.d_model, "model width")->required();
  train->add_option("--n-layers", o.n_layers, "transformer blocks")->required();
  train->add_option("--n-heads", o.n_heads, "attention heads (divide d-model)")->required();
  train->add_option("--d-ff", o.d_ff, "MLP width")->required();
  train->add_option("--batch-sequences", o.batch_sequences, "sequences per step")->required();
  train->add_option("--steps", o.steps, "optimizer steps (tokens = steps * B * T)")->required();
  train->add_option("--lr", o.lr, "peak learning rate")->capture_default_str();
  train->add_option("--warmup-steps", o.warmup_steps, "linear warm-up steps")->capture_default_str();
  train->add_option("--min-lr-fraction", o.min_lr_fraction, "cosine floor / lr")->capture_default_str();
  train->add_option("--weight-decay", o.weight_decay, "AdamW decay on matmul weights")->capture_default_str();
  train->add_option("--beta2", o.beta2, "AdamW beta2")->capture_default_str();
  train->add_option("--seed", o.seed, "init and data-order seed")->capture_default_str();
  train->add_option("--device", o.device, "cpu or cuda")->capture_default_str();
  train->add_option("--precision", o.precision, "fp32, or bf16 autocast on cuda")->capture_default_str();
  train->add_option("--threads", o.threads, "CPU threads for LibTorch")->capture_default_str();
}

void AddTrainFlags(CLI::App* train, isoflop::trainer::TrainOptions& o) {
  train->add_option("--data-dir", o.data_dir, "dataset directory (train.bin, val.bin)")->required();
  AddModelFlags(train, o);
  train->add_option("--eval-every", o.eval_every, "validate every K steps (0: end only)")->capture_default_str();
  train->add_option("--eval-batches", o.eval_batches, "validation batches")->capture_default_str();
  train->add_option("--log-every", o.log_every, "steps between metrics lines")->capture_default_str();
  train->add_option("--metrics-fd", o.metrics_fd, "fd for JSON-lines metrics (-1: stdout)")->capture_default_str();
}

struct BenchFlags {
  int64_t warmup = 10;
  double peak_tflops = 989;  // H100 SXM dense bf16
};

// Prints one JSON line on stdout and a human line on stderr.
absl::Status RunBench(const isoflop::trainer::TrainOptions& o, const BenchFlags& b) {
  ASSIGN_OR_RETURN(isoflop::trainer::BenchResult r,
                   isoflop::trainer::Bench(o, b.warmup, b.peak_tflops * 1e12));
  std::printf(
      "{\"n_params\": %lld, \"steps_per_s\": %.3f, \"tokens_per_s\": %.1f, "
      "\"tflops\": %.4g, \"mfu\": %.4g}\n",
      static_cast<long long>(r.n_params), r.steps_per_s, r.tokens_per_s, r.flops_per_s / 1e12,
      r.mfu);
  std::fprintf(stderr, "isoflop-trainer bench: %lld params, %.2f steps/s, %.0f tokens/s, "
               "%.2f TFLOP/s, MFU %.1f%% of %.0f TFLOP/s (%s)\n",
               static_cast<long long>(r.n_params), r.steps_per_s, r.tokens_per_s,
               r.flops_per_s / 1e12, 100 * r.mfu, b.peak_tflops,
               isoflop::FlopConventionText().c_str());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"isoflop-trainer: trains one GPT for one token budget"};
  app.require_subcommand(1);
  isoflop::trainer::TrainOptions o;
  CLI::App* train = app.add_subcommand("train", "train to an exact number of steps");
  AddTrainFlags(train, o);
  CLI::App* bench = app.add_subcommand("bench", "time training steps on random tokens");
  AddModelFlags(bench, o);
  BenchFlags b;
  bench->add_option("--untimed-steps", b.warmup, "untimed steps before the clock starts")->capture_default_str();
  bench->add_option("--peak-tflops", b.peak_tflops, "peak for MFU")->capture_default_str();
  app.footer(
      "Exit codes: 0 done, 2 invalid flags or data, 75 retryable, other failed.\n"
      "Example: isoflop-trainer train --data-dir DATA/kjv-bpe512 --vocab-size 512 --context 64 \\\n"
      "  --d-model 64 --n-layers 2 --n-heads 4 --d-ff 256 --batch-sequences 16 --steps 200");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : isoflop::kExitInvalidConfig;
  }
  if (bench->parsed()) o.data_dir = "(random tokens)";  // bench reads no data
  absl::Status s = isoflop::trainer::Validate(o);
  try {
    if (s.ok()) s = bench->parsed() ? RunBench(o, b) : isoflop::trainer::Train(o);
  } catch (const std::exception& e) {  // c10::Error derives from std::exception
    s = absl::InternalError(e.what());
  }
  if (!s.ok()) std::fprintf(stderr, "isoflop-trainer: %s\n", std::string(s.message()).c_str());
  return ExitCodeFor(s);
}
