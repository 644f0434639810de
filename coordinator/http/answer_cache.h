// AnswerCache: the dashboard's JSON answers kept per request, so that many
// tabs polling the same pages during a load cost one query per freshness
// bound instead of one per poll. An answer is served again while it is
// younger than `max_staleness`, or at any age while nothing was committed to
// the store since it was computed (TrialReader::DataVersion). So an answer
// reflects every commit made at least `max_staleness` before the request.
#ifndef ISOFLOP_COORDINATOR_HTTP_ANSWER_CACHE_H_
#define ISOFLOP_COORDINATOR_HTTP_ANSWER_CACHE_H_

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/store/trial_reader.h"
#include "nlohmann/json.hpp"

namespace isoflop::coordinator::http {

class AnswerCache {
 public:
  struct Stats {
    int64_t hits = 0;    // answers served from memory
    int64_t misses = 0;  // answers computed
  };

  // `reader` and `clock` (not owned, outlive this) tell commits and time
  // the answers. `max_staleness` zero: only an unchanged store serves a
  // cached answer.
  AnswerCache(TrialReader* reader, const Clock* clock,
              absl::Duration max_staleness)
      : reader_(reader), clock_(clock), max_staleness_(max_staleness) {}

  // The cached answer to `key` (the request: endpoint and every parameter)
  // while it is fresh as above; else compute()'s, cached when it is ok.
  // Errors are never cached. Thread-safe; compute runs without the lock.
  absl::StatusOr<nlohmann::json> Get(
      const std::string& key,
      absl::FunctionRef<absl::StatusOr<nlohmann::json>()> compute);

  Stats stats() const;

 private:
  struct Answer {
    nlohmann::json body;
    absl::Time computed_at;  // before its query began
    int64_t data_version = -1;
  };
  TrialReader* const reader_;
  const Clock* const clock_;
  const absl::Duration max_staleness_;
  mutable absl::Mutex mu_;
  // Bounded: cleared when full (a page of 1000 trials is ~1 MB as JSON).
  std::map<std::string, Answer> answers_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

// A cache key from the parts of a request, each length-prefixed so that no
// two requests share one.
std::string AnswerKey(std::initializer_list<std::string> parts);

}  // namespace isoflop::coordinator::http

#endif  // ISOFLOP_COORDINATOR_HTTP_ANSWER_CACHE_H_
