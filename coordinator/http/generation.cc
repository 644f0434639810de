#include "coordinator/http/generation.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace isoflop::coordinator::http {
namespace {

using json = nlohmann::json;

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

// A refused job's status, as the worker coded it; the reason (a child's
// stderr, perhaps cut inside a character) made valid UTF-8.
absl::Status Refusal(const v1::SampleEvent& e) {
  const auto code = static_cast<absl::StatusCode>(e.code());
  const std::string why =
      json::parse(
          json(e.data()).dump(-1, ' ', false, json::error_handler_t::replace))
          .get<std::string>();
  return absl::Status(
      code == absl::StatusCode::kOk ? absl::StatusCode::kUnknown : code, why);
}

}  // namespace

absl::StatusOr<json> CheckGenerateBody(const std::string& body,
                                       const GenerationOptions& o) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        "body: must be a JSON object, e.g. {\"prompt\": \"In the "
        "beginning\", \"max_new_tokens\": 64}");
  }
  static const std::vector<std::string> kKnown = {
      "prompt", "prompt_ids", "max_new_tokens", "temperature",
      "top_k",  "top_p",      "seed",           "ignore_eos"};
  for (const auto& [key, v] : j.items()) {
    if (std::find(kKnown.begin(), kKnown.end(), key) == kKnown.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          key,
          ": unknown field (known: prompt, prompt_ids, max_new_tokens, "
          "temperature, top_k, top_p, seed, ignore_eos)"));
    }
  }
  const bool text = j.contains("prompt"), ids = j.contains("prompt_ids");
  if (text == ids) {
    return absl::InvalidArgumentError(
        "prompt, prompt_ids: give exactly one (text, or token ids)");
  }
  if (text) {
    const json& v = j["prompt"];
    if (!v.is_string() || v.get<std::string>().empty()) {
      return Bad("prompt", v, "must be a non-empty string");
    }
    if (v.get<std::string>().size() > static_cast<size_t>(o.max_prompt_bytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt: ", v.get<std::string>().size(),
                       " bytes: must be at most ", o.max_prompt_bytes));
    }
  } else {
    const json& v = j["prompt_ids"];
    if (!v.is_array() || v.empty()) {
      return Bad("prompt_ids", v, "must be a non-empty array of token ids");
    }
    if (v.size() > static_cast<size_t>(o.max_prompt_bytes)) {
      return absl::InvalidArgumentError(absl::StrCat("prompt_ids: ", v.size(),
                                                     " ids: must be at most ",
                                                     o.max_prompt_bytes));
    }
  }
  if (j.contains("max_new_tokens")) {
    const json& v = j["max_new_tokens"];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 ||
        v.get<int64_t>() > o.max_new_tokens) {
      return Bad(
          "max_new_tokens", v,
          absl::StrCat("must be an integer in [1, ", o.max_new_tokens, "]"));
    }
  }
  if (j.contains("ignore_eos") && !j["ignore_eos"].is_boolean()) {
    return Bad("ignore_eos", j["ignore_eos"], "must be true or false");
  }
  return j;
}

absl::StatusOr<std::unique_ptr<RelayedJob>> Generation::Submit(
    const std::string& trial_id, v1::SampleJob job) {
  ASSIGN_OR_RETURN(const v1::Trial trial, lookup_(trial_id));
  if (trial.state() != v1::SUCCEEDED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "trial ", trial_id, " is ", v1::TrialState_Name(trial.state()),
        ": only a SUCCEEDED trial has final weights"));
  }
  if (trial.worker_id().empty()) {
    return absl::NotFoundError(
        absl::StrCat("trial ", trial_id, ": no worker holds its model.bin"));
  }
  job.set_trial_id(trial_id);
  job.set_dataset(trial.spec().dataset());
  return relay_->Submit(trial.worker_id(), std::move(job));
}

absl::StatusOr<std::unique_ptr<GenerationStream>> Generation::Start(
    const std::string& trial_id, const std::string& body) {
  ASSIGN_OR_RETURN(const v1::Trial trial, lookup_(trial_id));
  ASSIGN_OR_RETURN(const json request, CheckGenerateBody(body, options_));
  v1::SampleJob job;
  job.mutable_generate()->set_request_json(request.dump());
  ASSIGN_OR_RETURN(std::unique_ptr<RelayedJob> relayed,
                   Submit(trial_id, std::move(job)));
  auto stream = std::unique_ptr<GenerationStream>(
      new GenerationStream(std::move(relayed), trial_id, options_.log));
  // The first event says whether the job started: a refusal is the answer.
  std::vector<v1::SampleEvent> first;
  const absl::Time deadline = absl::Now() + options_.start_timeout;
  bool more = true;
  while (first.empty() && more && absl::Now() < deadline) {
    more = stream->job_->Next(deadline - absl::Now(), &first);
  }
  if (first.empty()) {
    return absl::DeadlineExceededError(absl::StrCat(
        "worker ", stream->job_->worker_id(), ": the generation did not start ",
        "within ", absl::FormatDuration(options_.start_timeout)));
  }
  if (first.front().event() == "refused") {
    stream->ended_ = true;
    return Refusal(first.front());
  }
  stream->ended_ = !more;
  for (const v1::SampleEvent& e : first) stream->Append(e, &stream->pending_);
  return stream;
}

absl::StatusOr<json> Generation::Eval(const std::string& trial_id,
                                      const std::string& body) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("data") ||
      j.size() != 1) {
    return absl::InvalidArgumentError(
        "body: must be {\"data\": \"DATASET\"}: the name of a dataset in "
        "the worker's --data-dir, whose val.bin is evaluated");
  }
  // A name, never a path: the body must not pick a file of the worker's
  // host (its token, /proc/self/environ, ...).
  const json& v = j["data"];
  if (!v.is_string() || !ValidDatasetName(v.get<std::string>())) {
    return Bad("data", v,
               "must be a dataset name (1 to 64 of [A-Za-z0-9_.-], starting "
               "with a letter or digit) in the worker's --data-dir, not a "
               "path");
  }
  v1::SampleJob job;
  job.mutable_eval()->set_data(v.get<std::string>());
  ASSIGN_OR_RETURN(std::unique_ptr<RelayedJob> relayed,
                   Submit(trial_id, std::move(job)));
  std::vector<v1::SampleEvent> events;
  const absl::Time deadline = absl::Now() + options_.eval_timeout;
  while (relayed->Next(deadline - absl::Now(), &events) &&
         absl::Now() < deadline) {
  }
  if (events.empty() || (events.back().event() != "result" &&
                         events.back().event() != "refused")) {
    return absl::DeadlineExceededError(
        absl::StrCat("worker ", relayed->worker_id(), ": no eval result in ",
                     absl::FormatDuration(options_.eval_timeout)));
  }
  if (events.back().event() == "refused") return Refusal(events.back());
  json result = json::parse(events.back().data(), nullptr, false);
  if (!result.is_object()) {
    return absl::InternalError(absl::StrCat("worker ", relayed->worker_id(),
                                            ": eval answered no JSON object"));
  }
  return result;
}

GenerationStream::~GenerationStream() {
  if (ended_) return;  // the worker's trainer has ended
  const std::string line = absl::StrFormat(
      "generate %s: client gone after %d tokens; worker %s told to end its "
      "trainer",
      trial_, tokens_, job_->worker_id());
  if (log_ != nullptr) {
    log_->Warning(line, {{"trial", trial_}});
  } else {
    std::fprintf(stderr, "isoflop-coordinator: %s\n", line.c_str());
  }
  // job_'s destructor sends the cancel.
}

void GenerationStream::Append(const v1::SampleEvent& e, std::string* out) {
  if (e.event() == "token") ++tokens_;
  absl::StrAppend(out, "event: ", e.event(), "\ndata: ", e.data(), "\n\n");
}

bool GenerationStream::Next(absl::Duration wait, std::string* out) {
  out->append(pending_);
  pending_.clear();
  if (ended_) return false;
  std::vector<v1::SampleEvent> events;
  const bool more =
      job_->Next(out->empty() ? wait : absl::ZeroDuration(), &events);
  for (const v1::SampleEvent& e : events) Append(e, out);
  if (!more) ended_ = true;
  return more;
}

}  // namespace isoflop::coordinator::http
