#include "exporter/poller/schedule.h"

#include <algorithm>

#include "exporter/core/clock.h"

namespace vmtime {

Schedule::Schedule(const CollectorConfig& cfg, int64_t now_mono_ns)
    : next_regular_(now_mono_ns), next_due_(now_mono_ns) {
  SetConfig(cfg);
}

void Schedule::SetConfig(const CollectorConfig& cfg) {
  interval_ns_ = std::max<int64_t>(1, SecondsToNs(cfg.interval_s));
  timeout_ns_ = std::max<int64_t>(1, SecondsToNs(cfg.timeout_s));
  max_retries_ = cfg.max_retries;
  backoff_ns_ = std::max<int64_t>(0, SecondsToNs(cfg.retry_backoff_s));
}

void Schedule::Start(int64_t now) {
  in_flight_ = true;
  overdue_reported_ = false;
  deadline_ = now + timeout_ns_;
  // Advance the cadence past `now` (skipping missed slots).
  if (now >= next_regular_) {
    const int64_t missed = (now - next_regular_) / interval_ns_;
    next_regular_ += (missed + 1) * interval_ns_;
  }
}

bool Schedule::Finish(int64_t now, bool success) {
  const bool reported = overdue_reported_;
  in_flight_ = false;
  overdue_reported_ = false;
  const bool failed = !success || reported;
  if (!failed) {
    retries_ = 0;
    next_due_ = next_regular_;
  } else if (retries_ < max_retries_) {
    const int64_t delay = backoff_ns_ << std::min(retries_, 20);
    ++retries_;
    next_due_ = std::min(now + delay, next_regular_);
  } else {
    retries_ = 0;
    next_due_ = next_regular_;
  }
  if (next_due_ < now) {
    // A run that took longer than the interval: start again now, cadence resumes.
    next_due_ = now;
  }
  return !reported;
}

}  // namespace vmtime
