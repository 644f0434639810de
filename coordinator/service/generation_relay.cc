#include "coordinator/service/generation_relay.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace isoflop::coordinator {
namespace {

// A job's last event: after it the worker sends nothing more for the job.
bool Terminal(const std::string& event) {
  return event == "done" || event == "error" || event == "result" ||
         event == "refused" || event == "ended";
}

}  // namespace

struct RelayedJob::State {
  absl::Mutex mu;
  std::deque<v1::SampleEvent> events ABSL_GUARDED_BY(mu);
  bool ended ABSL_GUARDED_BY(mu) = false;
  bool heard ABSL_GUARDED_BY(mu) = false;  // the worker sent an event

  void Push(v1::SampleEvent e) {
    absl::MutexLock lock(&mu);
    if (ended) return;
    heard = true;
    ended = Terminal(e.event());
    events.push_back(std::move(e));
  }
  // Ends the job from the coordinator's side (its worker's stream closed).
  void Abort(const std::string& worker_id) {
    absl::MutexLock lock(&mu);
    if (ended) return;
    v1::SampleEvent e;
    const std::string why = absl::StrCat(
        "worker ", worker_id,
        ": its connection to the coordinator closed before the job ended");
    if (heard) {
      e.set_event("error");
      e.set_data(nlohmann::json{{"error", why}}.dump());
    } else {
      e.set_event("refused");
      e.set_code(static_cast<int>(absl::StatusCode::kUnavailable));
      e.set_data(why);
    }
    events.push_back(std::move(e));
    ended = true;
  }
};

// One worker's ServeSamples call. Writes are queued (the callback API allows
// one in flight); OnDone detaches it from the relay and deletes it.
class GenerationRelay::Stream final
    : public grpc::ServerBidiReactor<v1::SampleUpdate, v1::SampleJob> {
 public:
  explicit Stream(GenerationRelay* relay) : relay_(relay) { StartRead(&in_); }

  // Queues `job` for writing; dropped once the stream is closing.
  void Send(v1::SampleJob job) {
    {
      absl::MutexLock lock(&wmu_);
      if (closing_) return;
      queue_.push_back(std::move(job));
      if (writing_) return;
      writing_ = true;
      out_ = std::move(queue_.front());
      queue_.pop_front();
    }
    StartWrite(&out_);
  }

  // Finishes the call with `status` once the write in flight (if any) is
  // done. Idempotent.
  void Close(const grpc::Status& status) {
    {
      absl::MutexLock lock(&wmu_);
      if (closing_) return;
      closing_ = true;
      queue_.clear();
      if (writing_) {
        finish_status_ = status;  // OnWriteDone finishes
        return;
      }
    }
    Finish(status);
  }

  const std::string& worker_id() const { return worker_id_; }
  void set_worker_id(std::string id) { worker_id_ = std::move(id); }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the worker closed its side or went away
      Close(grpc::Status::OK);
      return;
    }
    relay_->Deliver(this, in_);
    in_.Clear();
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    bool next = false;
    {
      absl::MutexLock lock(&wmu_);
      if (ok && !closing_ && !queue_.empty()) {
        out_ = std::move(queue_.front());
        queue_.pop_front();
        next = true;
      } else {
        writing_ = false;
        if (!ok && !closing_) {
          closing_ = true;
          queue_.clear();
          finish_status_ = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                        "write to the worker failed");
        }
        if (closing_) finish.swap(finish_status_);
      }
    }
    if (next) {
      StartWrite(&out_);
    } else if (finish.has_value()) {
      Finish(*finish);
    }
  }

  void OnCancel() override {
    Close(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }

  void OnDone() override {
    relay_->Detach(this);
    delete this;
  }

 private:
  GenerationRelay* relay_;
  v1::SampleUpdate in_;
  std::string worker_id_;  // set by Attach (under the relay's mu_)
  absl::Mutex wmu_;
  std::deque<v1::SampleJob> queue_ ABSL_GUARDED_BY(wmu_);
  v1::SampleJob out_;  // the write in flight
  bool writing_ ABSL_GUARDED_BY(wmu_) = false;
  bool closing_ ABSL_GUARDED_BY(wmu_) = false;
  std::optional<grpc::Status> finish_status_ ABSL_GUARDED_BY(wmu_);
};

RelayedJob::~RelayedJob() {
  if (!ended_) relay_->Cancel(job_id_);
}

bool RelayedJob::Next(absl::Duration wait, std::vector<v1::SampleEvent>* out) {
  if (ended_) return false;
  State& s = *state_;
  absl::MutexLock lock(&s.mu);
  auto ready = [&s]() ABSL_SHARED_LOCKS_REQUIRED(s.mu) {
    return !s.events.empty() || s.ended;
  };
  s.mu.AwaitWithTimeout(absl::Condition(&ready), wait);
  for (v1::SampleEvent& e : s.events) out->push_back(std::move(e));
  s.events.clear();
  if (s.ended) ended_ = true;
  return !ended_;
}

grpc::ServerBidiReactor<v1::SampleUpdate, v1::SampleJob>*
GenerationRelay::Open() {
  return new Stream(this);
}

absl::StatusOr<std::unique_ptr<RelayedJob>> GenerationRelay::Submit(
    const std::string& worker_id, v1::SampleJob job) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(worker_id);
  if (it == streams_.end()) {
    return absl::UnavailableError(absl::StrCat(
        "worker ", worker_id,
        " keeps this trial's model.bin but has no live connection to the "
        "coordinator (isoflop-worker not running, or not reconnected yet)"));
  }
  if (static_cast<int>(jobs_.size()) >= options_.max_concurrent) {
    return absl::ResourceExhaustedError(
        absl::StrCat(options_.max_concurrent,
                     " generations are running (--max-generations): try "
                     "again when one ends"));
  }
  const std::string job_id = absl::StrCat("j", ++next_job_);
  job.set_job_id(job_id);
  auto state = std::make_shared<RelayedJob::State>();
  jobs_[job_id] = Entry{state, it->second};
  it->second->Send(std::move(job));
  return std::unique_ptr<RelayedJob>(
      new RelayedJob(this, std::move(state), job_id, worker_id));
}

int GenerationRelay::running() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(jobs_.size());
}

bool GenerationRelay::Connected(const std::string& worker_id) const {
  absl::MutexLock lock(&mu_);
  return streams_.contains(worker_id);
}

void GenerationRelay::CloseAll() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  for (auto& [id, stream] : streams_) {
    stream->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                               "the coordinator is shutting down"));
  }
}

void GenerationRelay::Attach(Stream* stream, const std::string& worker_id) {
  if (closed_) {
    stream->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                               "the coordinator is shutting down"));
    return;
  }
  auto [it, inserted] = streams_.emplace(worker_id, stream);
  if (!inserted && it->second != stream) {
    // The worker reconnected (its old call may linger until it times out):
    // the new stream is the one jobs go to.
    Stream* old = it->second;
    it->second = stream;
    old->Close(grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                            "replaced by a newer stream of the same worker"));
  }
  stream->set_worker_id(worker_id);
}

void GenerationRelay::Deliver(Stream* stream, const v1::SampleUpdate& update) {
  absl::MutexLock lock(&mu_);
  if (stream->worker_id().empty()) {
    if (update.worker_id().empty()) {
      stream->Close(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "worker_id: the first SampleUpdate must name the worker"));
      return;
    }
    Attach(stream, update.worker_id());
  }
  for (const v1::SampleEvent& e : update.events()) {
    auto it = jobs_.find(e.job_id());
    if (it == jobs_.end() || it->second.stream != stream) continue;
    it->second.state->Push(e);
    if (Terminal(e.event())) EndLocked(e.job_id());
  }
}

void GenerationRelay::Detach(Stream* stream) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(stream->worker_id());
  if (it != streams_.end() && it->second == stream) streams_.erase(it);
  for (auto j = jobs_.begin(); j != jobs_.end();) {
    if (j->second.stream == stream) {
      j->second.state->Abort(stream->worker_id());
      j = jobs_.erase(j);
    } else {
      ++j;
    }
  }
}

void GenerationRelay::Cancel(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;  // already ended
  v1::SampleJob cancel;
  cancel.set_job_id(job_id);
  cancel.set_cancel(true);
  it->second.stream->Send(std::move(cancel));
}

void GenerationRelay::EndLocked(const std::string& job_id) {
  jobs_.erase(job_id);
}

}  // namespace isoflop::coordinator
