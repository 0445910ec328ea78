// SnapshotHolder: the one mutable cell between the poller (writer) and the
// HTTP handlers (readers). Readers take a shared_ptr copy and render from it
// with no lock held; the writer swaps in a new immutable snapshot. Each Set
// bumps a generation that a background reader can wait on (the metrics
// cache's refresher, metrics_cache.h).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stop_token>

#include "exporter/model/snapshot.h"

namespace vmtime {

class SnapshotHolder {
 public:
  SnapshotHolder() : snap_(std::make_shared<const Snapshot>()) {}
  std::shared_ptr<const Snapshot> Get() const {
    std::lock_guard lock(mu_);
    return snap_;
  }
  void Set(std::shared_ptr<const Snapshot> s) {
    if (!s) return;
    {
      std::lock_guard lock(mu_);
      snap_.swap(s);
      ++generation_;
    }
    changed_.notify_all();
    // The old snapshot (now in `s`) is released after the lock is dropped.
  }

  // How many snapshots were Set so far.
  uint64_t generation() const {
    std::lock_guard lock(mu_);
    return generation_;
  }
  // Blocks until the generation differs from `seen` or `stop` is requested;
  // returns the generation then.
  uint64_t WaitNewer(uint64_t seen, std::stop_token stop) const {
    std::unique_lock lock(mu_);
    changed_.wait(lock, stop, [&] { return generation_ != seen; });
    return generation_;
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable_any changed_;
  std::shared_ptr<const Snapshot> snap_;
  uint64_t generation_ = 0;
};

}  // namespace vmtime
