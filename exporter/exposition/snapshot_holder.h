// SnapshotHolder: the one mutable cell between the poller (writer) and the
// HTTP handlers (readers). Readers take a shared_ptr copy and render from it
// with no lock held; the writer swaps in a new immutable snapshot.
#pragma once

#include <memory>
#include <mutex>

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
    std::lock_guard lock(mu_);
    snap_.swap(s);
    // The old snapshot (now in `s`) is released after the lock is dropped.
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> snap_;
};

}  // namespace vmtime
