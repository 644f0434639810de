// `isoflop-trainer generate` and `eval`: sampling from and scoring a trained
// model (model_file.h).
//
// Generation keeps a static KV cache of max_batch slots. A request is
// prefilled once when a slot frees (its first token comes from the prefill),
// then every decode step runs all slots at once, one token each (continuous
// batching: requests join and leave between decode steps). On CUDA the decode
// step is captured in a CUDA graph after two eager steps; sampling
// (temperature, top-k, top-p, one uniform per token from the request's own
// seeded generator) runs after it on the device, so a request's tokens do not
// depend on the other requests in the batch.
#ifndef ISOFLOP_TRAINER_GENERATE_H_
#define ISOFLOP_TRAINER_GENERATE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/token_file.h"
#include "trainer/model.h"
#include "trainer/request.h"

namespace isoflop::trainer {

using SteadyClock = std::chrono::steady_clock;

// Where requests come from: lines of JSON (request.h).
class RequestSource {
 public:
  enum class Poll { kLine, kEmpty, kEnd };
  virtual ~RequestSource() = default;
  // kLine: `line` is the next request and `arrived` when it arrived. kEmpty
  // (only when !wait): none has arrived yet. kEnd: none will come. With
  // `wait`, blocks until a line or the end. Called from one thread.
  virtual Poll Next(bool wait, std::string& line,
                    SteadyClock::time_point& arrived) = 0;
};

// A fixed list of lines, all arrived at construction.
class VectorRequestSource : public RequestSource {
 public:
  explicit VectorRequestSource(std::vector<std::string> lines);
  Poll Next(bool wait, std::string& line,
            SteadyClock::time_point& arrived) override;

 private:
  std::vector<std::string> lines_;
  size_t next_ = 0;
  SteadyClock::time_point arrived_;
};

// Receives the output of Serve, on the thread that called Serve.
class GenerateSink {
 public:
  virtual ~GenerateSink() = default;
  // Token number `i` (0-based) generated for request `id`.
  virtual void Token(const std::string& id, int64_t i, int64_t token) = 0;
  // The request ended after `n` tokens. reason: "length" (max_new_tokens),
  // "eos" (eos_id generated, included in n) or "context" (the sequence fills
  // the context). ttft_ms: from arrival to the first token.
  virtual void Done(const std::string& id, int64_t n, double ttft_ms,
                    const std::string& reason) = 0;
  // The request was refused (id "" when the line had none); others go on.
  virtual void Error(const std::string& id, const std::string& message) = 0;
  // After each prefill round and each decode step: a place to flush.
  virtual void EndOfStep() {}
};

// JSON lines on `out`, flushed at every EndOfStep:
// {"id":"r1","i":0,"token":17}
// {"id":"r1","done":true,"n":16,"ttft_ms":3.2,"reason":"length"}
// {"id":"r1","error":"top_p = 0: must be in (0, 1]"}
class JsonLinesSink : public GenerateSink {
 public:
  explicit JsonLinesSink(FILE* out) : out_(out) {}
  void Token(const std::string& id, int64_t i, int64_t token) override;
  void Done(const std::string& id, int64_t n, double ttft_ms,
            const std::string& reason) override;
  void Error(const std::string& id, const std::string& message) override;
  void EndOfStep() override;

 private:
  FILE* out_;
};

struct ServeStats {
  int64_t requests = 0, errors = 0, tokens = 0, decode_steps = 0;
};

// Serves requests on one model. Not thread-safe; one Serve at a time.
class Generator {
 public:
  // `model` (parameters on their device, in the dtype to run) outlives this.
  // cuda_graph: capture the decode step on CUDA (ignored on CPU).
  Generator(const Gpt& model, int64_t max_batch, bool cuda_graph,
            const RequestDefaults& defaults);
  ~Generator();

  // Serves every request of `source` until it ends. A bad request becomes a
  // sink Error and the others go on; a request whose id is in flight is
  // refused. INTERNAL if LibTorch fails.
  absl::StatusOr<ServeStats> Serve(RequestSource& source, GenerateSink& sink);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

struct GenerateFlags {
  std::string model_path;
  std::vector<int64_t> prompt_ids;  // one request, id "prompt"
  std::string requests;             // FILE of JSON lines, or "-": stdin
  int64_t max_batch = 8;
  RequestDefaults defaults;
  std::string device = "cpu";
  std::string dtype = "auto";  // auto (cuda bf16, cpu fp32) | bf16 | fp32
  bool cuda_graphs = true;
  int threads = 1;
  // --bench: random prompts on the model of model_path, or on random weights
  // of `bench_dims` when no model is given.
  bool bench = false;
  std::vector<int64_t> bench_batches = {1, 64};
  int64_t bench_prompt_tokens = 16, bench_new_tokens = 128;
  ModelDims bench_dims{10000, 256, 512, 4, 16, 2048};
};

// Runs `generate` end to end: loads the model, serves the requests, writes
// JSON lines to stdout (bench: one JSON line per batch size on stdout and a
// human line on stderr). INVALID_ARGUMENT / NOT_FOUND for bad flags or files,
// and for a --prompt-ids request that is refused; a refused line of
// --requests is an error line, not a failed run.
absl::Status RunGenerate(const GenerateFlags& flags);

struct EvalResult {
  double loss = 0;           // mean next-token cross entropy, nats
  int64_t tokens = 0;        // predicted tokens (all but the first)
  double bits_per_byte = 0;  // 0 when the byte count is unknown
};

// Mean next-token loss of `model` over `tokens` cut into consecutive windows
// of context + 1 tokens overlapping by one (every token but the first is
// predicted once), `batch` windows per forward; the shorter tail window runs
// alone. Each window's loss is Gpt::Loss. bits_per_byte = loss * tokens / (ln
// 2 * bytes) when bytes > 0. INVALID_ARGUMENT for fewer than 2 tokens or an
// id >= vocab_size.
absl::StatusOr<EvalResult> Evaluate(const Gpt& model, TokenSpan tokens,
                                    int64_t batch, int64_t bytes);

struct EvalFlags {
  std::string model_path, data_path;
  int64_t bytes = 0, batch = 16;
  std::string device = "cpu";
  int threads = 1;
};

// Runs `eval`: one JSON line {"loss", "tokens", "bits_per_byte"?, ...} on
// stdout. NOT_FOUND / INVALID_ARGUMENT for bad files or flags.
absl::Status RunEval(const EvalFlags& flags);

}  // namespace isoflop::trainer

#endif  // ISOFLOP_TRAINER_GENERATE_H_
