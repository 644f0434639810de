#include "coordinator/http/answer_cache.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace isoflop::coordinator::http {

using nlohmann::json;

namespace {
constexpr size_t kMaxAnswers = 32;
}  // namespace

absl::StatusOr<json> AnswerCache::Get(
    const std::string& key, absl::FunctionRef<absl::StatusOr<json>()> compute) {
  const absl::Time now = clock_->Now();
  // -1 when unknown: then only the age serves an answer.
  const int64_t version = reader_->DataVersion();
  {
    absl::MutexLock lock(&mu_);
    const auto it = answers_.find(key);
    if (it != answers_.end() &&
        (now - it->second.computed_at < max_staleness_ ||
         (version >= 0 && version == it->second.data_version))) {
      ++stats_.hits;
      return it->second.body;
    }
    ++stats_.misses;
  }
  absl::StatusOr<json> body = compute();
  if (!body.ok()) return body;
  absl::MutexLock lock(&mu_);
  if (answers_.size() >= kMaxAnswers && !answers_.count(key)) answers_.clear();
  // A commit between the version read and the query labels the answer with
  // the older version: the next request past the bound recomputes it.
  answers_[key] = {*body, now, version};
  return body;
}

AnswerCache::Stats AnswerCache::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

std::string AnswerKey(std::initializer_list<std::string> parts) {
  std::string key;
  for (const std::string& p : parts) absl::StrAppend(&key, p.size(), ":", p);
  return key;
}

}  // namespace isoflop::coordinator::http
