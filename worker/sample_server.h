// Sampling and evaluation on the worker (docs/architecture.md, "Sampling
// through the workers"): the coordinator sends a SampleJob over the
// worker's WorkerService.ServeSamples stream for a trial whose model.bin
// this worker keeps under its --checkpoint-dir; the worker runs
// `isoflop-trainer generate` (or `eval`) with its own ProcessLauncher and
// sends the trainer's output back as SampleEvents while it is produced.
//
// SampleRunner is the jobs' state machine, free of gRPC (tests drive it with
// a fake launcher); SampleServer keeps the stream open (reconnecting after
// a second when it breaks) and moves jobs and events between the stream and
// a runner on a thread of its own.
#ifndef ISOFLOP_WORKER_SAMPLE_SERVER_H_
#define ISOFLOP_WORKER_SAMPLE_SERVER_H_

#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "isoflop/v1/service.grpc.pb.h"
#include "worker/piece_vocab.h"
#include "worker/process_launcher.h"

namespace isoflop::worker {

struct SampleOptions {
  std::string trainer_path;               // isoflop-trainer
  std::string data_bin;                   // isoflop-data (encode a prompt)
  std::filesystem::path data_root;        // DIR/<dataset>/{tokenizer.*,val.bin}
  std::filesystem::path checkpoint_root;  // DIR/<trial>/model.bin; empty: none
  std::filesystem::path scratch_dir;      // request files, children's stderr
  std::string device = "cpu";             // of the sampling trainers
  // Receives one human-readable line per event; must not be null.
  std::function<void(const std::string&)> log;
};

// Not thread-safe: one thread drives a runner. `launcher` and `clock` must
// outlive it.
class SampleRunner {
 public:
  SampleRunner(SampleOptions options, ProcessLauncher* launcher,
               const Clock* clock);
  ~SampleRunner();  // kills what still runs

  // A new job, or a cancel of one (SampleJob::cancel). A job that cannot
  // start is refused at once (its "refused" event comes from Poll).
  void Take(const v1::SampleJob& job);
  // Advances every job (reads its children's output, sees them end) and
  // returns the events produced since the last call, in order.
  std::vector<v1::SampleEvent> Poll();
  // Kills every job's child (the stream closed: nobody is listening).
  void KillAll();
  bool busy() const { return !jobs_.empty(); }

 private:
  enum class Phase { kEncoding, kGenerating, kEvaluating, kCancelled };
  struct Job {
    v1::SampleJob spec;
    Phase phase = Phase::kEncoding;
    ProcessId process = 0;
    std::filesystem::path stderr_path, request_path, model;
    std::shared_ptr<const PieceVocab> vocab;  // null: ids only
    std::string request_json;                 // for the trainer, less prompt
    std::vector<std::string> lines;           // encode's / eval's output
    absl::Time started;
    bool began = false;  // "start" sent
    int64_t tokens = 0, prompt_tokens = 0;
    double first_token_ms = -1, last_token_ms = -1;
    std::string text;  // the continuation so far
    std::string prompt;
    bool ended = false;
  };

  void Refuse(const std::string& job_id, absl::StatusCode code,
              const std::string& why);
  void Event(const std::string& job_id, const std::string& event,
             const std::string& data);
  absl::StatusOr<std::shared_ptr<const PieceVocab>> Vocab(
      const std::string& dataset);
  absl::Status Launch(Job& job, std::vector<std::string> argv);
  absl::Status StartTrainer(Job& job, const std::vector<int64_t>& ids);
  void HandleLine(Job& job, const std::string& line);
  void Ended(Job& job, const ExitStatus& exit);
  std::string StderrTail(const Job& job) const;

  SampleOptions options_;
  ProcessLauncher* launcher_;
  const Clock* clock_;
  std::map<std::string, Job> jobs_;  // by job id
  std::map<std::string, std::shared_ptr<const PieceVocab>> vocabs_;
  std::vector<v1::SampleEvent> out_;
};

struct SampleServerOptions {
  std::string address;     // the coordinator, host:port
  std::string token;       // the worker token
  std::string tls_ca_pem;  // empty: plain TCP
  absl::Duration reconnect = absl::Seconds(1);
  absl::Duration poll = absl::Milliseconds(5);  // while a job runs
};

class SampleServer {
 public:
  // Starts the thread; it opens the stream once SetWorkerId names the
  // worker (after its registration). `clock` must outlive this.
  SampleServer(SampleServerOptions options, SampleOptions sample,
               const Clock* clock);
  ~SampleServer();  // Stop()
  // The registered worker id; a new one reopens the stream under it.
  void SetWorkerId(const std::string& worker_id);
  // Closes the stream, kills running jobs and joins the thread.
  void Stop();

 private:
  void Run();
  // One stream's life: false when stopping.
  bool Serve(const std::string& worker_id);

  const SampleServerOptions options_;
  const SampleOptions sample_;
  const Clock* clock_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  absl::Mutex mu_;
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<v1::SampleJob> inbox_ ABSL_GUARDED_BY(mu_);
  bool stream_ended_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool open_ = false;  // the last stream opened (the thread's own)
  std::thread thread_;
};

}  // namespace isoflop::worker

#endif  // ISOFLOP_WORKER_SAMPLE_SERVER_H_
