// Sampling from a trained trial over HTTP (POST /api/v1/trials/{id}/generate
// and /eval, dashboards/API.md), relayed to the worker that keeps the
// trial's model.bin (service/generation_relay.h). Here only the request's
// shape and size are checked (a JSON object, known keys, the prompt's size,
// --max-new-tokens); the worker tokenizes the prompt and its trainer
// validates the request (trainer/request.h), and a refusal comes back with
// its code. The worker's events are written out as Server-Sent Events.
#ifndef ISOFLOP_COORDINATOR_HTTP_GENERATION_H_
#define ISOFLOP_COORDINATOR_HTTP_GENERATION_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "coordinator/service/generation_relay.h"
#include "isoflop/v1/service.pb.h"
#include "nlohmann/json.hpp"

namespace isoflop::coordinator::http {

struct GenerationOptions {
  int max_prompt_bytes = 4096;  // of a text prompt (ids: this many at most)
  int max_new_tokens = 1024;    // per request
  // How long a job may take to start (the worker tokenizes the prompt and
  // starts its trainer) before the request fails.
  absl::Duration start_timeout = absl::Seconds(60);
  absl::Duration eval_timeout = absl::Minutes(10);
  const Logger* log = nullptr;  // a gone client's line; null: stderr
};

// The trial as stored: its state, dataset and the worker of its latest
// attempt (Core::GetTrial). NOT_FOUND for an unknown trial.
using TrialLookup =
    std::function<absl::StatusOr<v1::Trial>(const std::string& trial_id)>;

// The shape of a generate body: a JSON object of known keys (prompt,
// prompt_ids, max_new_tokens, temperature, top_k, top_p, seed, ignore_eos),
// exactly one of prompt (a string of at most max_prompt_bytes) and
// prompt_ids (an array of at most max_prompt_bytes), max_new_tokens an
// integer in [1, max_new_tokens]. INVALID_ARGUMENT naming the field. The
// values' rules are the trainer's.
absl::StatusOr<nlohmann::json> CheckGenerateBody(
    const std::string& body, const GenerationOptions& options);

// One relayed generation: its events as SSE text. Destroying it before its
// end (the client went away) tells the worker to end the trainer.
class GenerationStream {
 public:
  ~GenerationStream();
  GenerationStream(const GenerationStream&) = delete;
  GenerationStream& operator=(const GenerationStream&) = delete;

  // Appends the events ready now to `out` ("event: token\ndata: {...}\n\n"),
  // waiting up to `wait` for the first. Returns false once the stream has
  // ended: its last event (done or error) is then in `out`.
  bool Next(absl::Duration wait, std::string* out);

 private:
  friend class Generation;
  GenerationStream(std::unique_ptr<RelayedJob> job, std::string trial,
                   const Logger* log)
      : job_(std::move(job)), trial_(std::move(trial)), log_(log) {}
  void Append(const v1::SampleEvent& e, std::string* out);

  std::unique_ptr<RelayedJob> job_;
  std::string trial_;
  const Logger* log_;
  std::string pending_;  // events read before the stream was returned
  int64_t tokens_ = 0;
  bool ended_ = false;
};

class Generation {
 public:
  // `relay` is not owned and must outlive this.
  Generation(GenerationRelay* relay, TrialLookup lookup,
             GenerationOptions options)
      : relay_(relay), lookup_(std::move(lookup)), options_(options) {}

  // Checks `body`, finds the trial's worker and starts the job there; the
  // stream is returned once the worker has started it. NOT_FOUND for an
  // unknown trial (or, from the worker, one without model.bin),
  // FAILED_PRECONDITION for a trial that did not succeed, UNAVAILABLE when
  // its worker has no live connection, RESOURCE_EXHAUSTED when
  // --max-generations jobs run, INVALID_ARGUMENT for the trainer's refusal.
  absl::StatusOr<std::unique_ptr<GenerationStream>> Start(
      const std::string& trial_id, const std::string& body);
  // Mean next-token loss of the trial's model on a dataset of the worker's
  // data directory, by name (body {"data": "DATASET"}: its val.bin; never a
  // path). {"loss", "tokens", "trial", "data", "dataset", ...}. Errors as
  // Start; INVALID_ARGUMENT naming `data` for anything but a dataset name.
  absl::StatusOr<nlohmann::json> Eval(const std::string& trial_id,
                                      const std::string& body);
  // Jobs in flight (GET /metrics isoflop_generations_running).
  int running() const { return relay_->running(); }

 private:
  // The job sent to the worker that keeps the trial's model.bin.
  absl::StatusOr<std::unique_ptr<RelayedJob>> Submit(
      const std::string& trial_id, v1::SampleJob job);

  GenerationRelay* relay_;
  TrialLookup lookup_;
  const GenerationOptions options_;
};

}  // namespace isoflop::coordinator::http

#endif  // ISOFLOP_COORDINATOR_HTTP_GENERATION_H_
