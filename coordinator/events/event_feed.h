// EventFeed: the coordinator's recent changes (metric points, trial updates,
// fits, worker heartbeats) as a numbered stream, for the dashboard's
// Server-Sent Events. Bounded: it keeps the newest `capacity` events; a
// reader that fell further behind is told to reload (Since() returns
// `gap = true`).
#ifndef ISOFLOP_COORDINATOR_EVENTS_EVENT_FEED_H_
#define ISOFLOP_COORDINATOR_EVENTS_EVENT_FEED_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace isoflop::coordinator::events {

struct FeedEvent {
  uint64_t seq = 0;      // 1, 2, ... in publish order (this process only)
  std::string type;      // "metric", "trial", "fit", "worker"
  std::string sweep_id;  // empty for worker events
  std::string data;      // one line of JSON, the SSE `data:` field
};

struct FeedBatch {
  std::vector<FeedEvent> events;  // seq > the `after` asked for, in order
  uint64_t last_seq = 0;  // the newest seq looked at (pass it as `after`)
  bool gap = false;       // events after `after` were dropped: reload
  bool closed = false;    // the feed is shutting down
};

// Thread-safe: Publish from any thread (the store's callers), Since from the
// HTTP threads.
class EventFeed {
 public:
  explicit EventFeed(size_t capacity = 8192) : capacity_(capacity) {}

  // Appends an event; returns its seq. Wakes every waiting reader.
  uint64_t Publish(std::string type, std::string sweep_id, std::string data);
  // Events with seq > `after` (for `sweep_id` and worker events only, unless
  // `sweep_id` is empty), waiting up to `timeout` for the first one.
  FeedBatch Since(uint64_t after, const std::string& sweep_id,
                  absl::Duration timeout);
  // The newest seq published so far (0: none).
  uint64_t LastSeq();
  // Wakes and ends every reader (closed = true); later Since calls return at
  // once.
  void Close();

 private:
  const size_t capacity_;
  absl::Mutex mu_;
  std::deque<FeedEvent> events_ ABSL_GUARDED_BY(mu_);
  uint64_t last_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace isoflop::coordinator::events

#endif  // ISOFLOP_COORDINATOR_EVENTS_EVENT_FEED_H_
