// GenerationRelay: sampling and evaluation jobs sent to the workers over
// their WorkerService.ServeSamples streams, and the workers' events relayed
// back to whoever submitted the job (the HTTP API, http/generation.h). The
// coordinator starts no process and reads no file of a worker: the worker
// that keeps a trial's model.bin runs the trainer (docs/architecture.md,
// "Sampling through the workers").
//
// Each worker keeps one stream open (worker/sample_server.h); a job is one
// SampleJob written on it, its events are the SampleUpdates the worker
// sends back, in order, as the trainer produces them. A job holds one of
// max_concurrent slots from Submit until the worker reports its end (its
// last event, or "ended" after a cancel) or its stream closes, so a slot
// counts a trainer that may still run.
#ifndef ISOFLOP_COORDINATOR_SERVICE_GENERATION_RELAY_H_
#define ISOFLOP_COORDINATOR_SERVICE_GENERATION_RELAY_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::coordinator {

struct GenerationRelayOptions {
  int max_concurrent = 2;  // jobs in flight at once; more are refused
};

class GenerationRelay;

// One job in flight, as its submitter sees it. Destroying it before the job
// has ended (the HTTP client went away) tells the worker to end the job's
// trainer.
class RelayedJob {
 public:
  ~RelayedJob();
  RelayedJob(const RelayedJob&) = delete;
  RelayedJob& operator=(const RelayedJob&) = delete;

  // Appends the job's events that have arrived to `out`, waiting up to
  // `wait` for the first. Returns false once the job has ended: its last
  // event ("done", "error", "result" or "refused") is then in `out`. A closed
  // worker stream ends the job with an "error" saying so.
  bool Next(absl::Duration wait, std::vector<v1::SampleEvent>* out);
  const std::string& job_id() const { return job_id_; }
  const std::string& worker_id() const { return worker_id_; }

 private:
  friend class GenerationRelay;
  struct State;
  RelayedJob(GenerationRelay* relay, std::shared_ptr<State> state,
             std::string job_id, std::string worker_id)
      : relay_(relay),
        state_(std::move(state)),
        job_id_(std::move(job_id)),
        worker_id_(std::move(worker_id)) {}

  GenerationRelay* relay_;
  std::shared_ptr<State> state_;
  std::string job_id_, worker_id_;
  bool ended_ = false;  // the last event was handed out
};

class GenerationRelay {
 public:
  explicit GenerationRelay(GenerationRelayOptions options = {})
      : options_(options) {}
  // Every stream must have been closed (CloseAll, then the server's
  // shutdown) before the relay goes.
  ~GenerationRelay() = default;
  GenerationRelay(const GenerationRelay&) = delete;
  GenerationRelay& operator=(const GenerationRelay&) = delete;

  // The reactor of one ServeSamples call (the caller has checked the worker
  // token). The stream is the worker's once its first message names it.
  grpc::ServerBidiReactor<v1::SampleUpdate, v1::SampleJob>* Open();

  // Sends `job` (job_id is assigned here) to `worker_id`. UNAVAILABLE, with
  // the reason, when that worker has no open stream; RESOURCE_EXHAUSTED when
  // max_concurrent jobs are in flight.
  absl::StatusOr<std::unique_ptr<RelayedJob>> Submit(
      const std::string& worker_id, v1::SampleJob job);

  // Jobs in flight (slots taken).
  int running() const;
  // Whether `worker_id` has an open stream.
  bool Connected(const std::string& worker_id) const;
  // Finishes every stream (UNAVAILABLE) and refuses new ones: call before
  // the gRPC server's Shutdown, which waits for open streams.
  void CloseAll();

 private:
  friend class RelayedJob;
  class Stream;

  void Attach(Stream* stream, const std::string& worker_id);
  void Deliver(Stream* stream, const v1::SampleUpdate& update);
  void Detach(Stream* stream);
  void Cancel(const std::string& job_id);
  // Ends a job: drops it from jobs_ and frees its slot.
  void EndLocked(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const GenerationRelayOptions options_;
  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, Stream*> streams_ ABSL_GUARDED_BY(mu_);  // by worker
  struct Entry {
    std::shared_ptr<RelayedJob::State> state;
    Stream* stream;
  };
  std::map<std::string, Entry> jobs_ ABSL_GUARDED_BY(mu_);  // by job id
  int64_t next_job_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SERVICE_GENERATION_RELAY_H_
