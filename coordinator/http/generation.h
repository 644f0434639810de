// Sampling from a trained trial over HTTP (POST /api/v1/trials/{id}/generate,
// dashboards/API.md): the coordinator validates the request, finds the
// trial's final weights (model.bin, kept by the worker that ran it under its
// --checkpoint-dir) and dataset, turns a text prompt into token ids with
// `isoflop-data encode`, and runs `isoflop-trainer generate` as a child
// process whose JSON lines it relays as Server-Sent Events, token by token.
// The trainer (LibTorch) and the tokenizer (SentencePiece) stay out of the
// coordinator's process (docs/architecture.md §1); the models directory
// must be readable from the coordinator's host (one machine, or a shared
// filesystem).
#ifndef ISOFLOP_COORDINATOR_HTTP_GENERATION_H_
#define ISOFLOP_COORDINATOR_HTTP_GENERATION_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "coordinator/http/piece_vocab.h"
#include "nlohmann/json.hpp"

namespace isoflop::coordinator::http {

struct GenerationOptions {
  std::string db_path;      // the coordinator's database (read-only here)
  std::string models_dir;   // DIR/<trial>/model.bin; empty: generation off
  std::string data_dir;     // DIR/<dataset>/tokenizer.{model,vocab}
  std::string trainer_bin;  // isoflop-trainer
  std::string data_bin;     // isoflop-data
  std::string device = "cpu";
  int max_concurrent = 2;       // generations running at once
  int max_prompt_bytes = 4096;  // of a text prompt
  int max_new_tokens = 1024;    // per request (also bounded by the context)
  const Logger* log = nullptr;  // a killed trainer's line; null: stderr
};

// A validated request body: exactly one of `prompt` and `prompt_ids`.
struct GenerateRequest {
  std::string prompt;
  std::vector<int64_t> prompt_ids;
  int64_t max_new_tokens = 64;
  double temperature = 0.8;
  int64_t top_k = 0;
  double top_p = 0.95;
  int64_t seed = 0;
  bool ignore_eos = false;  // run to max_new_tokens past an end of sentence
};

// Parses and validates a JSON body. INVALID_ARGUMENT names the field, the
// value and the rule (unknown fields are refused, so a typo is not ignored).
absl::StatusOr<GenerateRequest> ParseGenerateRequest(
    const std::string& body, const GenerationOptions& options);

// One running generation. Destroying it (the client went away or the stream
// ended) kills the trainer's process group if it still runs, reaps it and
// frees its slot.
class GenerationStream {
 public:
  ~GenerationStream();
  GenerationStream(const GenerationStream&) = delete;
  GenerationStream& operator=(const GenerationStream&) = delete;

  // Appends the events ready now to `out` (SSE text: "event: token\ndata:
  // {...}\n\n"), waiting up to `wait` for the first. Returns false once the
  // stream has ended: its last event (done or error) is then in `out`.
  bool Next(absl::Duration wait, std::string* out);

 private:
  friend class Generation;
  GenerationStream() = default;
  void Event(const std::string& type, const std::string& json_data,
             std::string* out);
  void HandleLine(const std::string& line, std::string* out);
  void Finish(std::string* out);  // reaps the child, ends the stream

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string stderr_path_;
  std::string buffer_;          // partial line
  std::string buffer_pending_;  // events to send before reading more
  bool ended_ = false;
  std::shared_ptr<const PieceVocab> vocab_;  // null: ids only (no tokenizer)
  std::string text_;                         // the continuation so far
  int64_t tokens_ = 0;
  std::string trial_;
  absl::Time started_;
  double first_token_ms_ = -1, last_token_ms_ = -1;
  std::atomic<int>* running_ = nullptr;
  const Logger* log_ = nullptr;
};

class Generation {
 public:
  explicit Generation(GenerationOptions options)
      : options_(std::move(options)) {}

  const GenerationOptions& options() const { return options_; }
  // Validates `body`, resolves the trial and starts the trainer. UNAVAILABLE
  // when generation is off (no models directory), NOT_FOUND for an unknown
  // trial or one without model.bin, FAILED_PRECONDITION for a trial that did
  // not succeed or a text prompt on a dataset without a tokenizer,
  // RESOURCE_EXHAUSTED when max_concurrent generations already run.
  absl::StatusOr<std::unique_ptr<GenerationStream>> Start(
      const std::string& trial_id, const std::string& body);
  int running() const { return running_.load(); }
  // Mean next-token loss of the trial's model on a dataset of the data
  // directory, by name (body {"data": "DATASET"}: DATA_DIR/DATASET/val.bin;
  // never a path, so a client cannot make the coordinator read its other
  // files). {"loss", "tokens", "trial", "data", "dataset", ...}.
  // INVALID_ARGUMENT naming `data` for anything but a dataset name,
  // NOT_FOUND for a dataset without val.bin; other errors as Start.
  absl::StatusOr<nlohmann::json> Eval(const std::string& trial_id,
                                      const std::string& body);

 private:
  struct Resolved {
    std::string model, dataset;
    std::shared_ptr<const PieceVocab> vocab;  // null: no tokenizer
  };
  // The SUCCEEDED trial's model.bin, dataset and tokenizer.
  absl::StatusOr<Resolved> Resolve(const std::string& trial_id);
  absl::StatusOr<std::shared_ptr<const PieceVocab>> Vocab(
      const std::string& dataset);
  absl::StatusOr<std::vector<int64_t>> Encode(const std::string& dataset,
                                              const std::string& prompt);

  const GenerationOptions options_;
  std::atomic<int> running_{0};
  absl::Mutex vocab_mu_;
  std::map<std::string, std::shared_ptr<const PieceVocab>> vocabs_
      ABSL_GUARDED_BY(vocab_mu_);
};

}  // namespace isoflop::coordinator::http

#endif  // ISOFLOP_COORDINATOR_HTTP_GENERATION_H_
