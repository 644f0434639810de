#include "coordinator/events/event_feed.h"

#include <algorithm>
#include <utility>

namespace isoflop::coordinator::events {

uint64_t EventFeed::Publish(std::string type, std::string sweep_id,
                            std::string data) {
  absl::MutexLock lock(&mu_);
  events_.push_back(
      {++last_seq_, std::move(type), std::move(sweep_id), std::move(data)});
  while (events_.size() > capacity_) events_.pop_front();
  return last_seq_;
}

FeedBatch EventFeed::Since(uint64_t after, const std::string& sweep_id,
                           absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  // Runs with mu_ held (Await evaluates conditions under the lock).
  auto ready = [this, after]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return closed_ || last_seq_ > after;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  FeedBatch batch;
  batch.closed = closed_;
  batch.last_seq = std::max(after, last_seq_);
  if (!events_.empty() && events_.front().seq > after + 1) batch.gap = true;
  for (const FeedEvent& e : events_) {
    if (e.seq <= after) continue;
    if (!sweep_id.empty() && !e.sweep_id.empty() && e.sweep_id != sweep_id)
      continue;
    batch.events.push_back(e);
  }
  return batch;
}

uint64_t EventFeed::LastSeq() {
  absl::MutexLock lock(&mu_);
  return last_seq_;
}

void EventFeed::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

}  // namespace isoflop::coordinator::events
