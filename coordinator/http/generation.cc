#include "coordinator/http/generation.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "coordinator/http/sqlite_reader.h"
#include "isoflop/v1/service.pb.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace isoflop::coordinator::http {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// A child process with its stdout (and optionally stdin) on pipes and its
// stderr in a file, in its own process group so that a kill reaches anything
// it started. posix_spawn rather than a launcher class shared with the worker:
// the worker's launcher owns process trees for trials, this needs two pipes.
struct Child {
  pid_t pid = -1;
  int in_fd = -1;   // write end of its stdin, or -1 (stdin is /dev/null)
  int out_fd = -1;  // read end of its stdout
};

absl::StatusOr<Child> Spawn(const std::vector<std::string>& argv,
                            const std::string& stderr_path, bool with_stdin) {
  int out[2], in[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  if (with_stdin && pipe2(in, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (with_stdin) {
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);  // the server's threads block some
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Child c;
  const int rc =
      posix_spawn(&c.pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(out[1]);
  if (with_stdin) close(in[0]);
  if (rc != 0) {
    close(out[0]);
    if (with_stdin) close(in[1]);
    return absl::UnavailableError(
        absl::StrCat(argv[0], ": cannot start: ", std::strerror(rc)));
  }
  c.out_fd = out[0];
  c.in_fd = with_stdin ? in[1] : -1;
  return c;
}

std::string TempPath() {
  std::string path =
      (fs::temp_directory_path() / "isoflop-generate-XXXXXX").string();
  const int fd = mkstemp(path.data());
  if (fd >= 0) close(fd);
  return path;
}

// The last `max` bytes of a file, trimmed: the reason a child gave.
std::string Tail(const std::string& path, size_t max = 600) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), {});
  if (s.size() > max) s = s.substr(s.size() - max);
  return std::string(absl::StripAsciiWhitespace(s));
}

// Waits up to `grace` for `pid` to exit (zero: not at all), then kills its
// group; returns the wait status.
int Reap(pid_t pid, absl::Duration grace) {
  int status = 0;
  const absl::Time deadline = absl::Now() + grace;
  while (true) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return status;
    if (absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  kill(-pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

std::string ExitText(int status) {
  if (WIFEXITED(status)) return absl::StrCat("status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("signal ", WTERMSIG(status));
  return "unknown status";
}

// Runs `argv` to its end (killed past `timeout`) and returns its stdout;
// INTERNAL with the exit status and its stderr's tail when it fails.
absl::StatusOr<std::string> RunToEnd(const std::vector<std::string>& argv,
                                     absl::Duration timeout) {
  const std::string err = TempPath();
  ASSIGN_OR_RETURN(Child c, Spawn(argv, err, /*with_stdin=*/false));
  std::string out;
  char buf[4096];
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    pollfd p{c.out_fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = read(c.out_fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, n);
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(c.out_fd);
  const int status = Reap(c.pid, absl::Seconds(1));
  const std::string why = Tail(err);
  unlink(err.c_str());
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat(fs::path(argv[0]).filename().string(), " ", argv[1],
                     " exited with ", ExitText(status), ": ", why));
  }
  return out;
}

absl::Status Bad(const std::string& field, const json& value,
                 const std::string& rule) {
  std::string v = value.dump();
  if (v.size() > 40) v = v.substr(0, 40) + "...";
  return absl::InvalidArgumentError(absl::StrCat(field, " = ", v, ": ", rule));
}

// A dataset's directory name as a sweep config names it (data.dataset):
// 1 to 64 of [A-Za-z0-9_.-], starting with a letter or digit.
bool ValidDatasetName(const std::string& name) {
  if (name.empty() || name.size() > 64 ||
      !std::isalnum(static_cast<unsigned char>(name[0]))) {
    return false;
  }
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
          c == '.')) {
      return false;
    }
  }
  return true;
}

bool ValidTrialId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
          c == '.')) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<GenerateRequest> ParseGenerateRequest(
    const std::string& body, const GenerationOptions& o) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        "body: must be a JSON object, e.g. {\"prompt\": \"In the "
        "beginning\", \"max_new_tokens\": 64}");
  }
  GenerateRequest r;
  for (const auto& [key, v] : j.items()) {
    if (key == "prompt") {
      if (!v.is_string()) return Bad(key, v, "must be a string");
      r.prompt = v.get<std::string>();
      if (r.prompt.empty()) return Bad(key, v, "must not be empty");
      if (r.prompt.size() > static_cast<size_t>(o.max_prompt_bytes)) {
        return absl::InvalidArgumentError(
            absl::StrCat("prompt: ", r.prompt.size(),
                         " bytes: must be at most ", o.max_prompt_bytes));
      }
    } else if (key == "prompt_ids") {
      if (!v.is_array() || v.empty()) {
        return Bad(key, v, "must be a non-empty array of token ids");
      }
      if (v.size() > static_cast<size_t>(o.max_prompt_bytes)) {
        return absl::InvalidArgumentError(absl::StrCat("prompt_ids: ", v.size(),
                                                       " ids: must be at most ",
                                                       o.max_prompt_bytes));
      }
      for (const json& id : v) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
            id.get<int64_t>() > 65535) {
          return Bad("prompt_ids[]", id, "must be an integer in [0, 65535]");
        }
        r.prompt_ids.push_back(id.get<int64_t>());
      }
    } else if (key == "max_new_tokens") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1 ||
          v.get<int64_t>() > o.max_new_tokens) {
        return Bad(
            key, v,
            absl::StrCat("must be an integer in [1, ", o.max_new_tokens, "]"));
      }
      r.max_new_tokens = v.get<int64_t>();
    } else if (key == "temperature") {
      if (!v.is_number() || !(v.get<double>() >= 0 && v.get<double>() <= 10)) {
        return Bad(key, v, "must be a number in [0, 10] (0: greedy)");
      }
      r.temperature = v.get<double>();
    } else if (key == "top_k") {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
          v.get<int64_t>() > 65536) {
        return Bad(key, v, "must be an integer in [0, 65536] (0: off)");
      }
      r.top_k = v.get<int64_t>();
    } else if (key == "top_p") {
      if (!v.is_number() || !(v.get<double>() > 0 && v.get<double>() <= 1)) {
        return Bad(key, v, "must be a number in (0, 1]");
      }
      r.top_p = v.get<double>();
    } else if (key == "seed") {
      if (!v.is_number_integer() || v.get<int64_t>() < 0) {
        return Bad(key, v, "must be a non-negative integer");
      }
      r.seed = v.get<int64_t>();
    } else if (key == "ignore_eos") {
      if (!v.is_boolean()) return Bad(key, v, "must be true or false");
      r.ignore_eos = v.get<bool>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          key,
          ": unknown field (known: prompt, prompt_ids, max_new_tokens, "
          "temperature, top_k, top_p, seed, ignore_eos)"));
    }
  }
  if (r.prompt.empty() == r.prompt_ids.empty()) {
    return absl::InvalidArgumentError(
        "prompt, prompt_ids: give exactly one (text, or token ids)");
  }
  return r;
}

absl::StatusOr<std::shared_ptr<const PieceVocab>> Generation::Vocab(
    const std::string& dataset) {
  absl::MutexLock lock(&vocab_mu_);
  auto it = vocabs_.find(dataset);
  if (it != vocabs_.end()) return it->second;
  const fs::path path =
      fs::path(options_.data_dir) / dataset / "tokenizer.vocab";
  std::error_code ec;
  std::shared_ptr<const PieceVocab> vocab;
  if (fs::exists(path, ec)) {
    ASSIGN_OR_RETURN(PieceVocab v, PieceVocab::Load(path.string()));
    vocab = std::make_shared<const PieceVocab>(std::move(v));
  }
  vocabs_[dataset] = vocab;  // null: a dataset without a tokenizer (synth)
  return vocab;
}

absl::StatusOr<std::vector<int64_t>> Generation::Encode(
    const std::string& dataset, const std::string& prompt) {
  ASSIGN_OR_RETURN(const std::string out,
                   RunToEnd({options_.data_bin, "encode", "--dataset",
                             (fs::path(options_.data_dir) / dataset).string(),
                             "--text", prompt},
                            absl::Seconds(20)));
  std::vector<int64_t> ids;
  for (absl::string_view f : absl::StrSplit(absl::StripAsciiWhitespace(out),
                                            ',', absl::SkipEmpty())) {
    int64_t id = 0;
    if (!absl::SimpleAtoi(f, &id)) {
      return absl::InternalError(
          absl::StrCat("isoflop-data encode printed \"", f, "\", not an id"));
    }
    ids.push_back(id);
  }
  if (ids.empty()) {
    return absl::InvalidArgumentError("prompt: encodes to no tokens");
  }
  return ids;
}

absl::StatusOr<Generation::Resolved> Generation::Resolve(
    const std::string& trial_id) {
  if (options_.models_dir.empty()) {
    return absl::UnavailableError(
        "sampling is off: start isoflop-coordinator with --models-dir DIR "
        "(the workers' --checkpoint-dir, readable from this host) and "
        "--data-dir");
  }
  if (!ValidTrialId(trial_id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("trial = \"", trial_id.substr(0, 40),
                     "\": must be 1..128 of [A-Za-z0-9_.-]"));
  }
  v1::TrialSpec spec;
  std::string state;
  {
    ASSIGN_OR_RETURN(Connection db, OpenReadOnly(options_.db_path));
    Statement s(db.get(), "SELECT spec, state FROM trials WHERE id = ?");
    s.Bind(1, trial_id);
    if (!s.Step()) {
      RETURN_IF_ERROR(s.status());
      return absl::NotFoundError(absl::StrCat("trial ", trial_id, ": unknown"));
    }
    if (!spec.ParseFromString(s.Text(0))) {
      return absl::DataLossError(
          absl::StrCat("trial ", trial_id, ": unreadable spec"));
    }
    state = s.Text(1);
  }
  if (state != v1::TrialState_Name(v1::SUCCEEDED)) {
    return absl::FailedPreconditionError(
        absl::StrCat("trial ", trial_id, " is ", state,
                     ": only a SUCCEEDED trial has final weights"));
  }
  Resolved r;
  r.model = (fs::path(options_.models_dir) / trial_id / "model.bin").string();
  r.dataset = spec.dataset();
  std::error_code ec;
  if (!fs::is_regular_file(r.model, ec)) {
    return absl::NotFoundError(absl::StrCat(
        "trial ", trial_id, ": no ", r.model,
        " (a worker keeps model.bin under its --checkpoint-dir for trials "
        "that succeeded; is --models-dir that directory?)"));
  }
  ASSIGN_OR_RETURN(r.vocab, Vocab(r.dataset));
  return r;
}

absl::StatusOr<std::unique_ptr<GenerationStream>> Generation::Start(
    const std::string& trial_id, const std::string& body) {
  ASSIGN_OR_RETURN(Resolved trial, Resolve(trial_id));
  ASSIGN_OR_RETURN(GenerateRequest req, ParseGenerateRequest(body, options_));
  const std::shared_ptr<const PieceVocab>& vocab = trial.vocab;
  std::vector<int64_t> ids = req.prompt_ids;
  if (!req.prompt.empty()) {
    if (vocab == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "prompt: dataset ", trial.dataset,
          " has no tokenizer (no tokenizer.vocab under --data-dir ",
          options_.data_dir, "): send prompt_ids instead"));
    }
    ASSIGN_OR_RETURN(ids, Encode(trial.dataset, req.prompt));
  }
  if (running_.fetch_add(1) >= options_.max_concurrent) {
    running_.fetch_sub(1);
    return absl::ResourceExhaustedError(
        absl::StrCat(options_.max_concurrent,
                     " generations are running (--max-generations): try "
                     "again when one ends"));
  }
  auto stream = std::unique_ptr<GenerationStream>(new GenerationStream);
  stream->running_ = &running_;  // released by the stream's destructor
  stream->vocab_ = vocab;
  stream->stderr_path_ = TempPath();
  stream->started_ = absl::Now();
  stream->trial_ = trial_id;
  stream->log_ = options_.log;
  // </s> (id 2 in `isoflop data prepare`'s tokenizers) ends a sentence.
  absl::StatusOr<Child> c = Spawn(
      {options_.trainer_bin, "generate", "--model", trial.model, "--requests",
       "-", "--max-batch", "1", "--device", options_.device, "--threads", "1",
       "--eos-id", vocab != nullptr && !req.ignore_eos ? "2" : "-1"},
      stream->stderr_path_, /*with_stdin=*/true);
  if (!c.ok()) return c.status();  // the stream's destructor frees the slot
  stream->pid_ = c->pid;
  stream->stdout_fd_ = c->out_fd;
  fcntl(stream->stdout_fd_, F_SETFL, O_NONBLOCK);
  const std::string line = json{{"id", trial_id},
                                {"prompt_ids", ids},
                                {"max_new_tokens", req.max_new_tokens},
                                {"temperature", req.temperature},
                                {"top_k", req.top_k},
                                {"top_p", req.top_p},
                                {"seed", req.seed}}
                               .dump() +
                           "\n";
  // One short line into an empty pipe: it fits, the write does not block.
  const bool sent = write(c->in_fd, line.data(), line.size()) ==
                    static_cast<ssize_t>(line.size());
  close(c->in_fd);
  if (!sent) {
    return absl::InternalError(
        absl::StrCat("isoflop-trainer generate: cannot send the request: ",
                     std::strerror(errno)));
  }
  json start{{"trial", trial_id},
             {"prompt_tokens", ids.size()},
             {"max_new_tokens", req.max_new_tokens},
             {"text", vocab != nullptr}};
  if (!req.prompt.empty()) start["prompt"] = req.prompt;
  stream->Event("start", start.dump(), &stream->buffer_pending_);
  return stream;
}

absl::StatusOr<nlohmann::json> Generation::Eval(const std::string& trial_id,
                                                const std::string& body) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("data") ||
      j.size() != 1) {
    return absl::InvalidArgumentError(
        "body: must be {\"data\": \"DATASET\"}: the name of a dataset in "
        "the coordinator's --data-dir, whose val.bin is evaluated");
  }
  // A name, never a path: the body must not pick a file of the
  // coordinator's host (its token, /proc/self/environ, ...).
  const json& v = j["data"];
  if (!v.is_string() || !ValidDatasetName(v.get<std::string>())) {
    return Bad("data", v,
               "must be a dataset name (1 to 64 of [A-Za-z0-9_.-], starting "
               "with a letter or digit) in the coordinator's --data-dir, not "
               "a path");
  }
  const std::string data = v.get<std::string>();
  ASSIGN_OR_RETURN(Resolved trial, Resolve(trial_id));
  if (options_.data_dir.empty()) {
    return absl::FailedPreconditionError(
        "data: the coordinator has no --data-dir to find datasets in");
  }
  const std::string tokens =
      (fs::path(options_.data_dir) / data / "val.bin").string();
  std::error_code ec;
  if (!fs::is_regular_file(tokens, ec)) {
    return absl::NotFoundError(absl::StrCat(
        "data = \"", data, "\": no dataset of that name in --data-dir ",
        options_.data_dir, " (no ", data, "/val.bin)"));
  }
  absl::StatusOr<std::string> out =
      RunToEnd({options_.trainer_bin, "eval", "--model", trial.model, "--data",
                tokens, "--device", options_.device},
               absl::Minutes(10));
  if (!out.ok()) return out.status();
  json result = json::parse(*out, nullptr, false);
  if (!result.is_object()) {
    return absl::InternalError(
        absl::StrCat("isoflop-trainer eval printed no JSON: ", *out));
  }
  result["trial"] = trial_id;
  result["data"] = data;
  result["dataset"] = trial.dataset;
  return result;
}

GenerationStream::~GenerationStream() {
  if (pid_ > 0) {  // still generating: the client went away
    const std::string line = absl::StrFormat(
        "generate %s: client gone after %d tokens; trainer (pid %d) killed",
        trial_, tokens_, pid_);
    if (log_ != nullptr) {
      log_->Warning(line, {{"trial", trial_}});
    } else {
      std::fprintf(stderr, "isoflop-coordinator: %s\n", line.c_str());
    }
    Reap(pid_, absl::ZeroDuration());
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
  if (!stderr_path_.empty()) unlink(stderr_path_.c_str());
  if (running_ != nullptr) running_->fetch_sub(1);
}

void GenerationStream::Event(const std::string& type,
                             const std::string& json_data, std::string* out) {
  absl::StrAppend(out, "event: ", type, "\ndata: ", json_data, "\n\n");
}

void GenerationStream::HandleLine(const std::string& line, std::string* out) {
  const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return;  // not a protocol line
  const double ms = absl::ToDoubleMilliseconds(absl::Now() - started_);
  if (j.contains("token")) {
    const int64_t token = j.value("token", int64_t{-1});
    if (first_token_ms_ < 0) first_token_ms_ = ms;
    last_token_ms_ = ms;
    ++tokens_;
    json e{{"i", j.value("i", tokens_ - 1)}, {"token", token}};
    if (vocab_ != nullptr) {
      const std::string& piece = vocab_->Text(static_cast<int>(token));
      text_ += piece;
      e["text"] = piece;
    }
    Event("token", e.dump(-1, ' ', false, json::error_handler_t::replace), out);
  } else if (j.contains("error")) {
    Event("error",
          json{{"error", j.value("error", std::string("unknown"))}}.dump(),
          out);
    ended_ = true;
  } else if (j.value("done", false)) {
    json e = j;
    e.erase("id");
    e["first_token_ms"] = first_token_ms_;
    e["last_token_ms"] = last_token_ms_;
    e["total_ms"] = ms;
    if (vocab_ != nullptr) e["text"] = text_;
    Event("done", e.dump(-1, ' ', false, json::error_handler_t::replace), out);
    ended_ = true;
  }
}

void GenerationStream::Finish(std::string* out) {
  const bool reported = ended_;
  ended_ = true;
  if (pid_ <= 0) return;
  const int status = Reap(pid_, absl::Seconds(2));
  pid_ = -1;
  if (!reported) {
    Event("error",
          json{{"error",
                absl::StrCat("isoflop-trainer generate exited with ",
                             ExitText(status), ": ", Tail(stderr_path_))}}
              .dump(-1, ' ', false, json::error_handler_t::replace),
          out);
  }
}

bool GenerationStream::Next(absl::Duration wait, std::string* out) {
  if (ended_ && pid_ <= 0) return false;
  out->append(buffer_pending_);
  buffer_pending_.clear();
  const absl::Time deadline = absl::Now() + wait;
  while (!ended_) {
    char buf[8192];
    const ssize_t n = read(stdout_fd_, buf, sizeof buf);
    if (n > 0) {
      buffer_.append(buf, n);
      size_t eol;
      while (!ended_ && (eol = buffer_.find('\n')) != std::string::npos) {
        HandleLine(buffer_.substr(0, eol), out);
        buffer_.erase(0, eol + 1);
      }
      continue;  // drain what is there before returning
    }
    if (n == 0) break;  // the trainer closed its stdout: it ended
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) break;
    if (!out->empty()) return true;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return true;
    pollfd p{stdout_fd_, POLLIN, 0};
    poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
  }
  Finish(out);
  return false;
}

}  // namespace isoflop::coordinator::http
