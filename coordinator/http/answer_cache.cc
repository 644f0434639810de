#include "coordinator/http/answer_cache.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/http/sqlite_reader.h"

namespace isoflop::coordinator::http {

using nlohmann::json;

namespace {
constexpr size_t kMaxAnswers = 32;
}  // namespace

int64_t AnswerCache::DataVersionLocked() {
  if (version_db_ == nullptr) {
    absl::StatusOr<Connection> db = OpenReadOnly(db_path_);
    if (!db.ok()) return -1;
    version_db_ = std::move(*db);
  }
  // The pragma's read transaction ends with the statement: this connection
  // never holds back a checkpoint.
  Statement s(version_db_.get(), "PRAGMA data_version");
  return s.Step() ? s.Int(0) : -1;
}

absl::StatusOr<json> AnswerCache::Get(
    const std::string& key, absl::FunctionRef<absl::StatusOr<json>()> compute) {
  const absl::Time now = clock_->Now();
  int64_t version = -1;
  {
    absl::MutexLock lock(&mu_);
    version = DataVersionLocked();
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
