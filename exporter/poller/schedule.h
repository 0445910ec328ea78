// Schedule: when each collector runs next. Pure logic on host-monotonic
// nanoseconds, so retries, backoff and deadlines are tested with plain
// numbers. One Schedule per collector; at most one run in flight.
//
// - A run is due at `next_due`; runs start on a fixed cadence (due times
//   advance by whole intervals; missed ones are skipped, not queued).
// - A failed run is retried after retry_backoff * 2^k (k = 0, 1, ...) up to
//   max_retries times, never later than the next regular due time.
// - A run still going at its deadline is reported failed once ("deadline
//   exceeded") and stays in flight: the collector is not started again until
//   the late run returns (its result is then discarded).
#pragma once

#include <cstdint>

#include "exporter/config/config.h"

namespace vmtime {

class Schedule {
 public:
  Schedule(const CollectorConfig& cfg, int64_t now_mono_ns);

  void SetConfig(const CollectorConfig& cfg);
  bool Due(int64_t now) const { return !in_flight_ && now >= next_due_; }
  // Run requested out of turn (a libvirt event): due now unless in flight.
  void WakeNow(int64_t now) { next_due_ = std::min(next_due_, now); }
  void Start(int64_t now);
  // The run has been going past its deadline and was not yet reported.
  bool Overdue(int64_t now) const { return in_flight_ && !overdue_reported_ && now >= deadline_; }
  void MarkOverdueReported() { overdue_reported_ = true; }
  // Returns false when the run had already been reported overdue (discard its result).
  bool Finish(int64_t now, bool success);
  // The earliest time something needs attention (a due run or a deadline).
  int64_t NextEvent() const {
    return in_flight_ ? (overdue_reported_ ? kNever : deadline_) : next_due_;
  }

  bool in_flight() const { return in_flight_; }
  int64_t next_due() const { return next_due_; }
  int64_t deadline() const { return deadline_; }
  int64_t interval_ns() const { return interval_ns_; }
  int retries_used() const { return retries_; }

  static constexpr int64_t kNever = INT64_MAX;

 private:
  int64_t interval_ns_;
  int64_t timeout_ns_;
  int max_retries_;
  int64_t backoff_ns_;
  int64_t next_regular_;  // the cadence: next regular due time
  int64_t next_due_;
  int64_t deadline_ = 0;
  bool in_flight_ = false;
  bool overdue_reported_ = false;
  int retries_ = 0;
};

}  // namespace vmtime
