// isoflop-trainer: trains one model for one token budget (trainer/README.md;
// its contract with the worker: docs/architecture.md §5.2).
// Parses flags and the DDP environment and maps the outcome to the exit-code
// contract.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "common/exit_codes.h"
#include "common/flops.h"
#include "common/status_macros.h"
#include "trainer/generate.h"
#include "trainer/options.h"
#include "trainer/request.h"
#include "trainer/train.h"

namespace {

int ExitCodeFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return isoflop::kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
      return isoflop::kExitInvalidConfig;
    case absl::StatusCode::kUnavailable:
      return isoflop::kExitRetryable;
    case absl::StatusCode::kAborted:  // fenced: a newer attempt owns the run
      return isoflop::kExitFenced;
    default:
      return 1;
  }
}

// Flags shared by `train`, `bench` and `profile`: model, batch, optimizer.
// The values of a trial (trainer/options.h) are required: a missing one is
// exit 2 naming the flag (CLI11: "--lr is required").
void AddModelFlags(CLI::App* app, isoflop::trainer::TrainOptions& o,
                   std::string& legacy) {
  app->add_option("--vocab-size", o.vocab_size, "vocabulary size V")
      ->required();
  app->add_option("--context", o.context, "sequence length T")->required();
  app->add_option("--d-model", o.d_model, "model width")->required();
  app->add_option("--n-layers", o.n_layers, "transformer blocks")->required();
  app->add_option("--n-heads", o.n_heads, "attention heads (divide d-model)")
      ->required();
  app->add_option("--d-ff", o.d_ff, "MLP width")->required();
  app->add_option(
         "--batch-sequences", o.batch_sequences,
         "sequences per optimizer step, over all ranks and micro-steps")
      ->required();
  app->add_option("--steps", o.steps,
                  "optimizer steps (tokens = steps * B * T)")
      ->required();
  app->add_option("--grad-accum", o.grad_accum,
                  "micro-steps per optimizer step")
      ->capture_default_str();
  app->add_option("--lr", o.lr, "peak learning rate")->required();
  app->add_option("--warmup-steps", o.warmup_steps, "linear warm-up steps")
      ->required();
  app->add_option("--min-lr-fraction", o.min_lr_fraction, "final LR / lr")
      ->required();
  app->add_option("--schedule", o.schedule,
                  "cosine, wsd (constant + 1-sqrt cool-down), or constant "
                  "(warm-up, then lr: a trunk)")
      ->required();
  app->add_option("--wsd-decay-fraction", o.wsd_decay_fraction,
                  "wsd: fraction of the steps spent cooling down")
      ->capture_default_str();
  app->add_option("--mup-base-width", o.mup_base_width,
                  "muP base width (0: standard parametrisation)")
      ->capture_default_str();
  app->add_option("--weight-decay", o.weight_decay,
                  "AdamW decay on matmul weights")
      ->required();
  app->add_option("--beta2", o.beta2, "AdamW beta2")->required();
  app->add_option("--seed", o.seed, "init and data-order seed")->required();
  app->add_option("--device", o.device, "cpu or cuda")->capture_default_str();
  app->add_option("--precision", o.precision,
                  "auto (bf16 on cuda, fp32 on cpu); "
                  "fp32; bf16 (bf16 weights copy and activations, fp32 "
                  "master weights and AdamW); on cuda also bf16-autocast "
                  "(fp32 weights and residual stream) and fp16 (loss "
                  "scaling)")
      ->required();
  app->add_option("--cuda-graphs", o.cuda_graphs,
                  "capture the whole step (cuda): true/false")
      ->capture_default_str();
  app->add_option("--attention", o.attention,
                  "the fused attention kernel on cuda: auto (flash for "
                  "head_dim <= 32, else ATen's choice, cuDNN on Hopper; the "
                  "start line names it), cudnn, flash, efficient or math")
      ->capture_default_str();
  app->add_option("--threads", o.threads, "CPU threads for LibTorch")
      ->required();
  app->add_option("--legacy", legacy,
                  "switch fused pieces of the CUDA step back to ATen for "
                  "A/B runs: comma-separated qkv, loss, norm, gelu, "
                  "embedding, adamw (default: none)");
  app->add_option("--zero-stage", o.zero_stage,
                  "0: AdamW state replicated on every rank (DDP); 1: ZeRO-1, "
                  "the AdamW moments sharded over the ranks (reduce-scatter "
                  "of gradients, all-gather of weights)")
      ->capture_default_str();
  app->add_option(
      "--start-time", o.start_time_unix_s,
      "shell start time, Unix seconds (date +%s.%N), for time to first step");
}

void AddTrainFlags(CLI::App* train, isoflop::trainer::TrainOptions& o,
                   std::string& legacy) {
  train
      ->add_option("--data-dir", o.data_dir,
                   "dataset directory (train.bin, val.bin)")
      ->required();
  AddModelFlags(train, o, legacy);
  train
      ->add_option("--eval-every", o.eval_every,
                   "validate every K steps (0: end only)")
      ->required();
  train->add_option("--eval-batches", o.eval_batches, "validation batches")
      ->required();
  train->add_option("--log-every", o.log_every, "steps between metrics lines")
      ->capture_default_str();
  train
      ->add_option("--metrics-fd", o.metrics_fd,
                   "fd for JSON-lines metrics (-1: stdout)")
      ->capture_default_str();
  train->add_option("--checkpoint-dir", o.checkpoint_dir,
                    "write DIR/checkpoint.bin (DIR/checkpoint.<epoch>.bin "
                    "with --lease-epoch) on a timer and on SIGTERM");
  train
      ->add_option("--checkpoint-every-min", o.checkpoint_every_min,
                   "minutes between checkpoints (0: only on SIGTERM)")
      ->capture_default_str();
  train
      ->add_option("--model-dtype", o.model_dtype,
                   "dtype of DIR/model.bin, the final weights: bf16 or fp32")
      ->capture_default_str();
  train->add_flag("--resume", o.resume,
                  "continue from the newest valid checkpoint in DIR of this "
                  "--lease-epoch or an older one (refuse if all are corrupt)");
  train
      ->add_option("--save-at-steps", o.save_at_steps,
                   "trunk: keep a checkpoint DIR/kept.<step>.bin after each "
                   "of these steps (comma-separated) and report it "
                   "(checkpoint_kept)")
      ->delimiter(',');
  train->add_option("--init-from", o.init_from,
                    "branch: a trunk's checkpoint directory; without a "
                    "checkpoint of its own, start from its kept.<STEP>.bin");
  train->add_option("--init-step", o.init_step,
                    "branch: the step of the trunk checkpoint to start from");
  train
      ->add_option("--replay-metrics-from", o.replay_metrics_from,
                   "on --resume, first re-emit the checkpoint's metrics lines "
                   "of steps >= STEP (-1: none)")
      ->capture_default_str();
  train
      ->add_option("--lease-epoch", o.lease_epoch,
                   "the attempt's lease epoch (set by the worker): names its "
                   "checkpoint; an older epoch can no longer write into DIR "
                   "once this one started (DIR/fence)")
      ->capture_default_str();
  train
      ->add_option("--watchdog-fd", o.watchdog_fd,
                   "fd the worker feeds once per renewed lease (one line of "
                   "CLOCK_BOOTTIME ns); -1: no watchdog")
      ->capture_default_str();
  train
      ->add_option("--watchdog-timeout-s", o.watchdog_timeout_s,
                   "with --watchdog-fd: exit 76 (fenced) when no renewal "
                   "newer than this many seconds arrived")
      ->capture_default_str();
}

// The DDP environment (trainer/README.md, "DDP"). WORLD_SIZE unset: no process
// group. INVALID_ARGUMENT for a value that is not a number.
absl::Status ReadDistEnvironment(isoflop::trainer::DistOptions& d) {
  auto read_int = [](const char* name, int& out) -> absl::Status {
    const char* v = std::getenv(name);
    if (v == nullptr) return absl::OkStatus();
    if (!absl::SimpleAtoi(v, &out)) {
      return absl::InvalidArgumentError(std::string(name) + " = " + v +
                                        ": must be an integer");
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(read_int("WORLD_SIZE", d.world_size));
  RETURN_IF_ERROR(read_int("RANK", d.rank));
  RETURN_IF_ERROR(read_int("LOCAL_RANK", d.local_rank));
  RETURN_IF_ERROR(read_int("MASTER_PORT", d.master_port));
  if (const char* addr = std::getenv("MASTER_ADDR")) d.master_addr = addr;
  return absl::OkStatus();
}

struct BenchFlags {
  int64_t warmup = 10;
  double peak_tflops = 989;  // H100 SXM dense bf16
  std::string trace;         // profile
};

// Prints one JSON line on stdout and a human line on stderr.
absl::Status RunBench(const isoflop::trainer::TrainOptions& o,
                      const BenchFlags& b) {
  ASSIGN_OR_RETURN(isoflop::trainer::BenchResult r,
                   isoflop::trainer::Bench(o, b.warmup, b.peak_tflops * 1e12));
  std::printf(
      "{\"n_params\": %lld, \"n_total\": %lld, \"n_non_embedding\": %lld, "
      "\"n_matmul\": %lld, "
      "\"flops_per_token\": %.6g, \"batch_sequences\": %lld, \"context\": "
      "%lld, "
      "\"precision\": \"%s\", \"cuda_graphs\": %s, \"world_size\": %d, "
      "\"attention_backend\": \"%s\", \"steps_per_s\": %.3f, \"ms_per_step\": "
      "%.4f, "
      "\"tokens_per_s\": %.1f, \"tflops\": %.4g, \"mfu\": %.4g, "
      "\"peak_tflops\": %.1f, "
      "\"peak_allocated_gib\": %.3f, \"peak_reserved_gib\": %.3f, "
      "\"time_to_first_step_s\": %.3f, \"first_step_from\": \"%s\", "
      "\"convention\": \"%s\"}\n",
      static_cast<long long>(r.n_params), static_cast<long long>(r.n_params),
      static_cast<long long>(r.n_non_embedding),
      static_cast<long long>(r.n_matmul), r.flops_per_token,
      static_cast<long long>(o.batch_sequences),
      static_cast<long long>(o.context), o.precision.c_str(),
      o.cuda_graphs && o.device == "cuda" ? "true" : "false",
      std::max(o.dist.world_size, 1), r.attention_backend.c_str(),
      r.steps_per_s, r.ms_per_step, r.tokens_per_s, r.flops_per_s / 1e12, r.mfu,
      b.peak_tflops, r.peak_allocated_gib, r.peak_reserved_gib, r.first_step_s,
      r.start_from_shell ? "shell" : "bench_call",
      isoflop::FlopConventionText().c_str());
  std::fprintf(
      stderr,
      "isoflop-trainer bench: %lld params, %.3f ms/step, %.0f tokens/s, "
      "%.2f TFLOP/s, MFU %.1f%% of %.0f TFLOP/s, first step %.3f s (%s)\n",
      static_cast<long long>(r.n_params), r.ms_per_step, r.tokens_per_s,
      r.flops_per_s / 1e12, 100 * r.mfu, b.peak_tflops, r.first_step_s,
      isoflop::FlopConventionText().c_str());
  return absl::OkStatus();
}

absl::Status RunProfile(const isoflop::trainer::TrainOptions& o,
                        const BenchFlags& b) {
  ASSIGN_OR_RETURN(std::string table,
                   isoflop::trainer::Profile(o, b.warmup, b.trace));
  std::printf("%s", table.c_str());
  std::fprintf(
      stderr,
      "isoflop-trainer profile: trace written to %s (open in Perfetto)\n",
      b.trace.c_str());
  return absl::OkStatus();
}

// Flags of `generate`; --prompt-ids and --bench-batches arrive as text.
struct GenerateText {
  std::string prompt_ids, bench_batches = "1,64";
};

void AddGenerateFlags(CLI::App* app, isoflop::trainer::GenerateFlags& g,
                      GenerateText& text) {
  app->add_option("--model", g.model_path,
                  "model.bin written by train (required unless --bench)");
  app->add_option("--prompt-ids", text.prompt_ids,
                  "one request: comma-separated token ids, e.g. 1,2,3");
  app->add_option("--requests", g.requests,
                  "FILE of JSON-lines requests, or - for stdin (served as "
                  "they arrive)");
  app->add_option("--max-batch", g.max_batch,
                  "KV-cache slots: requests decoded together")
      ->capture_default_str();
  app->add_option("--max-new-tokens", g.defaults.max_new_tokens,
                  "default max_new_tokens")
      ->capture_default_str();
  app->add_option("--temperature", g.defaults.sampling.temperature,
                  "default temperature (0: greedy)")
      ->capture_default_str();
  app->add_option("--top-k", g.defaults.sampling.top_k,
                  "default top_k (0: off)")
      ->capture_default_str();
  app->add_option("--top-p", g.defaults.sampling.top_p,
                  "default top_p, in (0, 1]")
      ->capture_default_str();
  app->add_option("--seed", g.defaults.sampling.seed,
                  "default seed of a request's sampler")
      ->capture_default_str();
  app->add_option("--eos-id", g.defaults.eos_id,
                  "default eos_id: stop after it (-1: none)")
      ->capture_default_str();
  app->add_option("--device", g.device, "cpu or cuda")->capture_default_str();
  app->add_option("--dtype", g.dtype, "auto (cuda bf16, cpu fp32), bf16, fp32")
      ->capture_default_str();
  app->add_option("--cuda-graphs", g.cuda_graphs,
                  "capture the decode step (cuda): true/false")
      ->capture_default_str();
  app->add_option("--threads", g.threads, "CPU threads for LibTorch")
      ->capture_default_str();
  app->add_flag("--bench", g.bench,
                "time decoding on random prompts (random weights without "
                "--model)");
  app->add_option("--bench-batches", text.bench_batches,
                  "bench: batch sizes, comma-separated")
      ->capture_default_str();
  app->add_option("--bench-prompt-tokens", g.bench_prompt_tokens,
                  "bench: prompt length")
      ->capture_default_str();
  app->add_option("--bench-new-tokens", g.bench_new_tokens,
                  "bench: tokens generated per request")
      ->capture_default_str();
  isoflop::ModelDims& d = g.bench_dims;
  app->add_option("--vocab-size", d.vocab_size, "bench without --model")
      ->capture_default_str();
  app->add_option("--context", d.context, "bench without --model")
      ->capture_default_str();
  app->add_option("--d-model", d.d_model, "bench without --model")
      ->capture_default_str();
  app->add_option("--n-layers", d.n_layers, "bench without --model")
      ->capture_default_str();
  app->add_option("--n-heads", d.n_heads, "bench without --model")
      ->capture_default_str();
  app->add_option("--d-ff", d.d_ff, "bench without --model")
      ->capture_default_str();
  app->footer(
      "Request line (JSON; only id and prompt_ids required, the rest default "
      "to the flags):\n"
      "  {\"id\":\"r1\",\"prompt_ids\":[1,2,3],\"max_new_tokens\":16,"
      "\"temperature\":0.8,\"top_k\":50,\"top_p\":0.95,\"seed\":7}\n"
      "Output, flushed per decode step: {\"id\":\"r1\",\"i\":0,"
      "\"token\":17} per token, then\n"
      "  {\"id\":\"r1\",\"done\":true,\"n\":16,\"ttft_ms\":3.1,"
      "\"reason\":\"length|eos|context\"}, or {\"id\":\"r1\","
      "\"error\":\"...\"}.\n"
      "Examples:\n"
      "  isoflop-trainer generate --model RUN/model.bin --prompt-ids 5,17,42 "
      "--max-new-tokens 32 --temperature 0\n"
      "  isoflop-trainer generate --model RUN/model.bin --requests reqs.jsonl "
      "--max-batch 16\n"
      "  producer | isoflop-trainer generate --model RUN/model.bin --requests "
      "-\n"
      "  isoflop-trainer generate --bench --device cuda --bench-batches 1,64   "
      "# seed model, random weights");
}

void AddEvalFlags(CLI::App* app, isoflop::trainer::EvalFlags& e) {
  app->add_option("--model", e.model_path, "model.bin written by train")
      ->required();
  app->add_option("--data", e.data_path,
                  "token file (the format of train.bin / val.bin)")
      ->required();
  app->add_option("--bytes", e.bytes,
                  "bytes of the text the tokens came from: adds bits per byte")
      ->capture_default_str();
  app->add_option("--batch", e.batch, "windows of context tokens per forward")
      ->capture_default_str();
  app->add_option("--device", e.device, "cpu or cuda")->capture_default_str();
  app->add_option("--threads", e.threads, "CPU threads for LibTorch")
      ->capture_default_str();
  app->footer(
      "Prints {\"loss\": nats per token, \"tokens\": predicted tokens, "
      "\"bits_per_byte\": with --bytes}.\n"
      "bits_per_byte = loss * tokens / (ln 2 * bytes).\n"
      "Example: isoflop-trainer eval --model RUN/model.bin --data "
      "DATA/kjv-bpe512/val.bin --bytes 431000");
}

absl::Status RunGenerateCommand(isoflop::trainer::GenerateFlags g,
                                const GenerateText& text) {
  if (!text.prompt_ids.empty()) {
    ASSIGN_OR_RETURN(g.prompt_ids, isoflop::trainer::ParseIdList(
                                       text.prompt_ids, "--prompt-ids"));
  }
  ASSIGN_OR_RETURN(g.bench_batches, isoflop::trainer::ParseIdList(
                                        text.bench_batches, "--bench-batches"));
  return isoflop::trainer::RunGenerate(g);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"isoflop-trainer: trains one GPT for one token budget"};
  app.require_subcommand(1);
  isoflop::trainer::TrainOptions o;
  CLI::App* train =
      app.add_subcommand("train", "train to an exact number of steps");
  std::string legacy;  // --legacy, parsed into o.legacy
  AddTrainFlags(train, o, legacy);
  BenchFlags b;
  CLI::App* bench =
      app.add_subcommand("bench", "time training steps on random tokens");
  AddModelFlags(bench, o, legacy);
  bench
      ->add_option("--untimed-steps", b.warmup,
                   "untimed steps before the clock starts")
      ->capture_default_str();
  bench->add_option("--peak-tflops", b.peak_tflops, "peak for MFU")
      ->capture_default_str();
  CLI::App* profile = app.add_subcommand(
      "profile", "Kineto trace of --steps steps on random tokens");
  AddModelFlags(profile, o, legacy);
  profile
      ->add_option("--untimed-steps", b.warmup, "steps before the trace starts")
      ->capture_default_str();
  profile->add_option("--trace", b.trace, "Chrome/Perfetto trace JSON to write")
      ->required();
  isoflop::trainer::GenerateFlags g;
  GenerateText g_text;
  CLI::App* generate = app.add_subcommand(
      "generate",
      "sample from model.bin with a KV cache and continuous batching");
  AddGenerateFlags(generate, g, g_text);
  isoflop::trainer::EvalFlags e;
  CLI::App* eval = app.add_subcommand(
      "eval",
      "mean next-token loss (and bits per byte) of model.bin on a "
      "token file");
  AddEvalFlags(eval, e);
  app.footer(
      "Exit codes: 0 done, 2 invalid flags or data, 75 retryable, 76 fenced "
      "(watchdog or a newer attempt; retried), other failed;\n"
      "killed by SIGTERM (after writing the checkpoint when --checkpoint-dir "
      "is set).\n"
      "DDP: RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT from the "
      "environment.\n"
      "Example: isoflop-trainer train --data-dir DATA/kjv-bpe512 --vocab-size "
      "512 --context 64 "
      "\\\n"
      "  --d-model 64 --n-layers 2 --n-heads 4 --d-ff 256 --batch-sequences 16 "
      "--steps 200 \\\n"
      "  --lr 1e-2 --schedule cosine --warmup-steps 10 --min-lr-fraction 0.1 "
      "--weight-decay 0.1 --beta2 0.95 \\\n"
      "  --seed 0 --eval-every 0 --eval-batches 8 --precision auto --threads 1 "
      "--checkpoint-dir RUN\n"
      "(the values of a trial are required flags: the trainer applies no "
      "default to them)\n"
      "Then: isoflop-trainer generate --model RUN/model.bin --prompt-ids 1,2,3 "
      "(see generate --help),\n"
      "      isoflop-trainer eval --model RUN/model.bin --data "
      "DATA/kjv-bpe512/val.bin");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : isoflop::kExitInvalidConfig;
  }
  if (generate->parsed() || eval->parsed()) {
    absl::Status s;
    try {
      s = generate->parsed() ? RunGenerateCommand(g, g_text)
                             : isoflop::trainer::RunEval(e);
    } catch (const std::exception& ex) {
      s = absl::InternalError(ex.what());
    }
    if (!s.ok())
      std::fprintf(stderr, "isoflop-trainer: %s\n",
                   std::string(s.message()).c_str());
    return ExitCodeFor(s);
  }
  if (!train->parsed()) {  // bench/profile: no data, no validation loss
    o.data_dir = "(random tokens)";
    o.eval_every = 0;
    o.eval_batches = 1;
  }
  if (o.precision == "auto") o.precision = o.device == "cuda" ? "bf16" : "fp32";
  absl::Status s = ReadDistEnvironment(o.dist);
  if (s.ok()) {
    absl::StatusOr<isoflop::trainer::LegacyPaths> paths =
        isoflop::trainer::ParseLegacy(legacy);
    if (paths.ok()) {
      o.legacy = *paths;
    } else {
      s = paths.status();
    }
  }
  if (s.ok()) s = isoflop::trainer::Validate(o);
  try {
    if (s.ok()) {
      s = bench->parsed()     ? RunBench(o, b)
          : profile->parsed() ? RunProfile(o, b)
                              : isoflop::trainer::Train(o);
    }
  } catch (const std::exception& e) {  // c10::Error derives from std::exception
    s = absl::InternalError(e.what());
  }
  if (s.code() ==
      absl::StatusCode::kCancelled) {  // SIGTERM, checkpoint written
    std::fprintf(stderr, "isoflop-trainer: %s\n",
                 std::string(s.message()).c_str());
    std::fflush(nullptr);
    signal(SIGTERM, SIG_DFL);
    raise(SIGTERM);
  }
  if (!s.ok())
    std::fprintf(stderr, "isoflop-trainer: %s\n",
                 std::string(s.message()).c_str());
  return ExitCodeFor(s);
}
