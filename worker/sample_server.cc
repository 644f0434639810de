#include "worker/sample_server.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <system_error>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/bearer_token.h"
#include "nlohmann/json.hpp"
#include "worker/grpc_coordinator_client.h"
#include "worker/posix_process_launcher.h"

namespace isoflop::worker {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The HTTP API's defaults for fields a request leaves out
// (dashboards/API.md), given to the trainer as its flags' defaults.
constexpr int kDefaultMaxNewTokens = 64;
constexpr double kDefaultTemperature = 0.8;
constexpr double kDefaultTopP = 0.95;
// </s> in `isoflop data prepare`'s tokenizers: ends a sentence.
constexpr int kEndOfSentence = 2;

std::string ExitText(const ExitStatus& e) {
  return e.signaled ? absl::StrCat("signal ", e.signal)
                    : absl::StrCat("status ", e.exit_code);
}

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

SampleRunner::SampleRunner(SampleOptions options, ProcessLauncher* launcher,
                           const Clock* clock)
    : options_(std::move(options)), launcher_(launcher), clock_(clock) {}

SampleRunner::~SampleRunner() { KillAll(); }

void SampleRunner::KillAll() {
  for (auto& [id, job] : jobs_) {
    if (job.process != 0) {
      // No grace: the next Poll sends SIGKILL; what is not reaped by then
      // the launcher's destructor kills and reaps.
      (void)launcher_->Terminate(job.process, absl::ZeroDuration());
      absl::StatusOr<std::optional<ExitStatus>> s =
          launcher_->Poll(job.process);
      if (s.ok() && s->has_value()) (void)launcher_->Release(job.process);
    }
    std::error_code ec;
    fs::remove(job.stderr_path, ec);
    fs::remove(job.request_path, ec);
  }
  jobs_.clear();
}

void SampleRunner::Event(const std::string& job_id, const std::string& event,
                         const std::string& data) {
  v1::SampleEvent& e = out_.emplace_back();
  e.set_job_id(job_id);
  e.set_event(event);
  e.set_data(data);
}

void SampleRunner::Refuse(const std::string& job_id, absl::StatusCode code,
                          const std::string& why) {
  options_.log(absl::StrCat("sample job ", job_id, " refused (",
                            absl::StatusCodeToString(code), "): ", why));
  v1::SampleEvent& e = out_.emplace_back();
  e.set_job_id(job_id);
  e.set_event("refused");
  e.set_code(static_cast<int>(code));
  e.set_data(why);
}

absl::StatusOr<std::shared_ptr<const PieceVocab>> SampleRunner::Vocab(
    const std::string& dataset) {
  auto it = vocabs_.find(dataset);
  if (it != vocabs_.end()) return it->second;
  const fs::path path = options_.data_root / dataset / "tokenizer.vocab";
  std::error_code ec;
  std::shared_ptr<const PieceVocab> vocab;
  if (fs::exists(path, ec)) {
    absl::StatusOr<PieceVocab> v = PieceVocab::Load(path.string());
    if (!v.ok()) return v.status();
    vocab = std::make_shared<const PieceVocab>(*std::move(v));
  }
  vocabs_[dataset] = vocab;  // null: a dataset without a tokenizer (synth)
  return vocab;
}

absl::Status SampleRunner::Launch(Job& job, std::vector<std::string> argv) {
  LaunchSpec spec;
  spec.argv = std::move(argv);
  spec.log_path = job.stderr_path;
  spec.stdout_to_lines = true;
  std::error_code ec;
  fs::remove(job.stderr_path, ec);  // a fresh stderr per child
  absl::StatusOr<ProcessId> id = launcher_->Launch(spec);
  if (!id.ok()) return id.status();
  job.process = *id;
  return absl::OkStatus();
}

void SampleRunner::Take(const v1::SampleJob& spec) {
  const std::string& id = spec.job_id();
  if (spec.cancel()) {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.ended) return;  // already over
    Job& job = it->second;
    job.phase = Phase::kCancelled;
    job.ended = true;
    if (job.process != 0) (void)launcher_->Terminate(job.process, {});
    return;
  }
  if (jobs_.contains(id)) return;  // a duplicate
  const std::string& trial = spec.trial_id();
  const fs::path model = options_.checkpoint_root / trial / "model.bin";
  std::error_code ec;
  if (options_.checkpoint_root.empty() || !fs::is_regular_file(model, ec)) {
    return Refuse(
        id, absl::StatusCode::kNotFound,
        absl::StrCat("trial ", trial, ": no model.bin under this worker's ",
                     "--checkpoint-dir ", options_.checkpoint_root.string(),
                     " (a worker keeps it for the trials it ran to success)"));
  }
  Job job;
  job.spec = spec;
  job.model = model;
  job.started = clock_->Now();
  job.stderr_path = options_.scratch_dir / absl::StrCat("sample-", id, ".err");
  job.request_path =
      options_.scratch_dir / absl::StrCat("sample-", id, ".jsonl");
  fs::create_directories(options_.scratch_dir, ec);
  if (spec.has_eval()) {
    const fs::path tokens = options_.data_root / spec.eval().data() / "val.bin";
    if (!fs::is_regular_file(tokens, ec)) {
      return Refuse(id, absl::StatusCode::kNotFound,
                    absl::StrCat("data = \"", spec.eval().data(),
                                 "\": no dataset of that name in the worker's "
                                 "--data-dir ",
                                 options_.data_root.string(), " (no ",
                                 spec.eval().data(), "/val.bin)"));
    }
    job.phase = Phase::kEvaluating;
    if (absl::Status s = Launch(
            job, {options_.trainer_path, "eval", "--model", model.string(),
                  "--data", tokens.string(), "--device", options_.device});
        !s.ok()) {
      return Refuse(id, s.code(), std::string(s.message()));
    }
    jobs_.emplace(id, std::move(job));
    return;
  }
  json request = json::parse(spec.generate().request_json(), nullptr, false);
  if (!request.is_object()) {
    return Refuse(id, absl::StatusCode::kInvalidArgument,
                  "request_json: must be a JSON object");
  }
  absl::StatusOr<std::shared_ptr<const PieceVocab>> vocab =
      Vocab(spec.dataset());
  if (!vocab.ok()) {
    return Refuse(id, vocab.status().code(),
                  std::string(vocab.status().message()));
  }
  job.vocab = *vocab;
  const bool ignore_eos = request.contains("ignore_eos") &&
                          request["ignore_eos"].is_boolean() &&
                          request["ignore_eos"].get<bool>();
  request.erase("ignore_eos");
  request["id"] = id;
  job.spec.mutable_generate()->set_request_json(
      ignore_eos ? "{\"ignore_eos\":true}" : "{}");
  if (request.contains("prompt")) {
    job.prompt = request["prompt"].is_string()
                     ? request["prompt"].get<std::string>()
                     : Dump(request["prompt"]);
    request.erase("prompt");
    job.request_json = request.dump();
    if (job.vocab == nullptr) {
      return Refuse(id, absl::StatusCode::kFailedPrecondition,
                    absl::StrCat("prompt: dataset ", spec.dataset(),
                                 " has no tokenizer (no tokenizer.vocab under "
                                 "the worker's --data-dir ",
                                 options_.data_root.string(),
                                 "): send prompt_ids instead"));
    }
    job.phase = Phase::kEncoding;
    if (absl::Status s =
            Launch(job, {options_.data_bin, "encode", "--dataset",
                         (options_.data_root / spec.dataset()).string(),
                         "--text", job.prompt});
        !s.ok()) {
      return Refuse(id, s.code(), std::string(s.message()));
    }
    jobs_.emplace(id, std::move(job));
    return;
  }
  job.request_json = request.dump();
  auto [it, inserted] = jobs_.emplace(id, std::move(job));
  if (absl::Status s = StartTrainer(it->second, {}); !s.ok()) {
    jobs_.erase(it);
    Refuse(id, s.code(), std::string(s.message()));
  }
}

// Writes the trainer's request (with `ids` as prompt_ids when the prompt was
// text) and starts `isoflop-trainer generate` on it.
absl::Status SampleRunner::StartTrainer(Job& job,
                                        const std::vector<int64_t>& ids) {
  json request = json::parse(job.request_json);
  if (!ids.empty()) request["prompt_ids"] = ids;
  job.prompt_tokens =
      request.contains("prompt_ids") && request["prompt_ids"].is_array()
          ? static_cast<int64_t>(request["prompt_ids"].size())
          : 0;
  job.request_json = request.dump();
  {
    std::ofstream out(job.request_path, std::ios::trunc);
    out << job.request_json << "\n";
    if (!out) {
      return absl::InternalError(
          absl::StrCat(job.request_path.string(), ": cannot write"));
    }
  }
  const bool ignore_eos =
      job.spec.generate().request_json() == "{\"ignore_eos\":true}";
  job.phase = Phase::kGenerating;
  return Launch(
      job, {options_.trainer_path,
            "generate",
            "--model",
            job.model.string(),
            "--requests",
            job.request_path.string(),
            "--max-batch",
            "1",
            "--device",
            options_.device,
            "--threads",
            "1",
            "--max-new-tokens",
            absl::StrCat(kDefaultMaxNewTokens),
            "--temperature",
            absl::StrCat(kDefaultTemperature),
            "--top-p",
            absl::StrCat(kDefaultTopP),
            "--eos-id",
            absl::StrCat(job.vocab != nullptr && !ignore_eos ? kEndOfSentence
                                                             : -1)});
}

void SampleRunner::HandleLine(Job& job, const std::string& line) {
  const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || job.ended) return;
  const std::string& id = job.spec.job_id();
  const double ms = absl::ToDoubleMilliseconds(clock_->Now() - job.started);
  if (j.contains("error")) {
    const std::string why = j.value("error", std::string("unknown"));
    job.ended = true;
    if (!job.began) {  // the trainer refused the request: its rules
      return Refuse(id, absl::StatusCode::kInvalidArgument, why);
    }
    return Event(id, "error", Dump(json{{"error", why}}));
  }
  if (!job.began) {
    const json request = json::parse(job.request_json, nullptr, false);
    json start{{"trial", job.spec.trial_id()},
               {"prompt_tokens", job.prompt_tokens},
               {"max_new_tokens",
                request.value("max_new_tokens", kDefaultMaxNewTokens)},
               {"text", job.vocab != nullptr}};
    if (!job.prompt.empty()) start["prompt"] = job.prompt;
    Event(id, "start", Dump(start));
    job.began = true;
  }
  if (j.contains("token")) {
    const int64_t token = j.value("token", int64_t{-1});
    if (job.first_token_ms < 0) job.first_token_ms = ms;
    job.last_token_ms = ms;
    ++job.tokens;
    json e{{"i", j.value("i", job.tokens - 1)}, {"token", token}};
    if (job.vocab != nullptr) {
      const std::string& piece = job.vocab->Text(static_cast<int>(token));
      job.text += piece;
      e["text"] = piece;
    }
    Event(id, "token", Dump(e));
  } else if (j.value("done", false)) {
    json e = j;
    e.erase("id");
    e["first_token_ms"] = job.first_token_ms;
    e["last_token_ms"] = job.last_token_ms;
    e["total_ms"] = ms;
    if (job.vocab != nullptr) e["text"] = job.text;
    job.ended = true;
    Event(id, "done", Dump(e));
  }
}

std::string SampleRunner::StderrTail(const Job& job) const {
  std::ifstream in(job.stderr_path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), {});
  if (s.size() > 600) s = s.substr(s.size() - 600);
  return std::string(absl::StripAsciiWhitespace(s));
}

void SampleRunner::Ended(Job& job, const ExitStatus& exit) {
  const std::string& id = job.spec.job_id();
  const std::string binary =
      fs::path(job.phase == Phase::kEncoding ? options_.data_bin
                                             : options_.trainer_path)
          .filename()
          .string();
  switch (job.phase) {
    case Phase::kCancelled:
      options_.log(absl::StrFormat(
          "sample job %s (trial %s): cancelled by the coordinator (client "
          "gone) after %d tokens; trainer ended (%s)",
          id, job.spec.trial_id(), job.tokens, ExitText(exit)));
      Event(id, "ended", Dump(json{{"tokens", job.tokens}}));
      job.ended = true;
      return;
    case Phase::kEncoding: {
      if (exit.signaled || exit.exit_code != 0) {
        job.ended = true;
        return Refuse(id, absl::StatusCode::kInternal,
                      absl::StrCat(binary, " encode exited with ",
                                   ExitText(exit), ": ", StderrTail(job)));
      }
      std::vector<int64_t> ids;
      const std::string printed = absl::StrJoin(job.lines, "");
      for (absl::string_view f : absl::StrSplit(
               absl::StripAsciiWhitespace(printed), ',', absl::SkipEmpty())) {
        int64_t v = 0;
        if (!absl::SimpleAtoi(f, &v)) {
          job.ended = true;
          return Refuse(
              id, absl::StatusCode::kInternal,
              absl::StrCat(binary, " encode printed \"", f, "\", not an id"));
        }
        ids.push_back(v);
      }
      job.lines.clear();
      (void)launcher_->Release(job.process);
      job.process = 0;
      if (ids.empty()) {
        job.ended = true;
        return Refuse(id, absl::StatusCode::kInvalidArgument,
                      "prompt: encodes to no tokens");
      }
      if (absl::Status s = StartTrainer(job, ids); !s.ok()) {
        job.ended = true;
        return Refuse(id, s.code(), std::string(s.message()));
      }
      return;
    }
    case Phase::kEvaluating: {
      job.ended = true;
      const std::string out = absl::StrJoin(job.lines, "\n");
      json result = json::parse(out, nullptr, false);
      if (exit.signaled || exit.exit_code != 0 || !result.is_object()) {
        return Refuse(
            id, absl::StatusCode::kInternal,
            absl::StrCat(binary, " eval exited with ", ExitText(exit), ": ",
                         StderrTail(job), out.empty() ? "" : " (printed: ", out,
                         out.empty() ? "" : ")"));
      }
      result["trial"] = job.spec.trial_id();
      result["data"] = job.spec.eval().data();
      result["dataset"] = job.spec.dataset();
      return Event(id, "result", Dump(result));
    }
    case Phase::kGenerating:
      if (job.ended) return;
      job.ended = true;
      {
        const std::string why =
            absl::StrCat(binary, " generate exited with ", ExitText(exit), ": ",
                         StderrTail(job));
        if (!job.began) return Refuse(id, absl::StatusCode::kInternal, why);
        return Event(id, "error", Dump(json{{"error", why}}));
      }
  }
}

std::vector<v1::SampleEvent> SampleRunner::Poll() {
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    Job& job = it->second;
    bool gone = false;
    if (job.process != 0) {
      absl::StatusOr<std::vector<std::string>> lines =
          launcher_->ReadLines(job.process);
      if (lines.ok()) {
        for (const std::string& line : *lines) {
          if (job.phase == Phase::kGenerating) {
            HandleLine(job, line);
          } else if (job.phase != Phase::kCancelled) {
            job.lines.push_back(line);
          }
        }
      }
      absl::StatusOr<std::optional<ExitStatus>> exit =
          launcher_->Poll(job.process);
      if (!exit.ok() || exit->has_value()) {
        const ProcessId process = job.process;
        // Lines written just before the exit.
        if (absl::StatusOr<std::vector<std::string>> last =
                launcher_->ReadLines(process);
            last.ok()) {
          for (const std::string& line : *last) {
            if (job.phase == Phase::kGenerating) {
              HandleLine(job, line);
            } else if (job.phase != Phase::kCancelled) {
              job.lines.push_back(line);
            }
          }
        }
        Ended(job, exit.ok() ? **exit : ExitStatus::Code(-1));
        if (job.process == process) {  // no next child started
          (void)launcher_->Release(process);
          job.process = 0;
        }
      }
      gone = job.process == 0;
    } else {
      gone = true;
    }
    if (gone) {
      std::error_code ec;
      fs::remove(job.stderr_path, ec);
      fs::remove(job.request_path, ec);
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
  std::vector<v1::SampleEvent> out;
  out.swap(out_);
  return out;
}

// ------------------------------------------------------------- SampleServer

SampleServer::SampleServer(SampleServerOptions options, SampleOptions sample,
                           const Clock* clock)
    : options_(std::move(options)), sample_(std::move(sample)), clock_(clock) {
  channel_ = grpc::CreateCustomChannel(
      options_.address,
      options_.tls_ca_pem.empty()
          ? grpc::InsecureChannelCredentials()
          : grpc::SslCredentials({.pem_root_certs = options_.tls_ca_pem}),
      ReconnectArgs());
  stub_ = v1::WorkerService::NewStub(channel_);
  thread_ = std::thread([this] { Run(); });
}

SampleServer::~SampleServer() { Stop(); }

void SampleServer::SetWorkerId(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  if (worker_id_ == worker_id) return;
  worker_id_ = worker_id;
  if (context_ != nullptr) context_->TryCancel();  // reopen under the new id
}

void SampleServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void SampleServer::Run() {
  while (true) {
    std::string id;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stop_ || !worker_id_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stop_) return;
      id = worker_id_;
    }
    if (!Serve(id)) return;
    absl::MutexLock lock(&mu_);
    auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_; };
    mu_.AwaitWithTimeout(absl::Condition(&stopping), options_.reconnect);
  }
}

bool SampleServer::Serve(const std::string& worker_id) {
  grpc::ClientContext context;
  context.AddMetadata(kAuthorizationKey,
                      absl::StrCat(kBearerPrefix, options_.token));
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return false;
    context_ = &context;
    inbox_.clear();
    stream_ended_ = false;
  }
  std::unique_ptr<grpc::ClientReaderWriter<v1::SampleUpdate, v1::SampleJob>>
      stream = stub_->ServeSamples(&context);
  v1::SampleUpdate hello;
  hello.set_worker_id(worker_id);
  bool ok = stream->Write(hello);
  // Jobs arrive on a thread of their own: Read blocks.
  std::thread reader([this, &stream, ok] {
    v1::SampleJob job;
    while (ok && stream->Read(&job)) {
      absl::MutexLock lock(&mu_);
      inbox_.push_back(std::move(job));
      job.Clear();
    }
    absl::MutexLock lock(&mu_);
    stream_ended_ = true;
  });
  if (ok && !open_) sample_.log("sampling stream to the coordinator open");
  open_ = ok;
  bool stopping = false;
  {
    PosixProcessLauncher launcher(clock_);
    SampleRunner runner(sample_, &launcher, clock_);
    while (ok) {
      std::deque<v1::SampleJob> jobs;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return stop_ || stream_ended_ || !inbox_.empty();
        };
        mu_.AwaitWithTimeout(absl::Condition(&ready),
                             runner.busy() ? options_.poll : absl::Seconds(1));
        jobs.swap(inbox_);
        stopping = stop_;
        if (stop_ || stream_ended_) break;
      }
      for (const v1::SampleJob& job : jobs) runner.Take(job);
      std::vector<v1::SampleEvent> events = runner.Poll();
      if (events.empty()) continue;
      v1::SampleUpdate update;
      for (v1::SampleEvent& e : events) *update.add_events() = std::move(e);
      if (!stream->Write(update)) break;
    }
    runner.KillAll();
  }
  context.TryCancel();
  reader.join();
  const grpc::Status status = stream->Finish();
  {
    absl::MutexLock lock(&mu_);
    context_ = nullptr;
    stopping = stopping || stop_;
  }
  // Logged once per outage: while the coordinator is down the stream is
  // retried every `reconnect` quietly.
  if (!stopping && open_) {
    sample_.log(absl::StrCat("sampling stream to the coordinator closed (",
                             status.ok() ? "OK" : status.error_message(),
                             "): reopening"));
  }
  if (!status.ok()) open_ = false;
  return !stopping;
}

}  // namespace isoflop::worker
