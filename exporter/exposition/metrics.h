// Exposition of a Snapshot as Prometheus metrics. Pure functions of the
// snapshot: no I/O, no clock reads, and they do not throw (civetweb and
// prometheus-cpp do not catch).
#pragma once

#include <prometheus/collectable.h>

#include <string>
#include <vector>

#include "exporter/exposition/families.h"
#include "exporter/exposition/snapshot_holder.h"

namespace vmtime::exposition {

void AppendSelfMetrics(const Snapshot& s, FamilyBuilder& out);
// vmtime_host_synchronised{source}: the host sync state scoring used
// (Snapshot::host_reference); nothing when it is absent.
void AppendHostMetrics(const Snapshot& s, FamilyBuilder& out);
void AppendTimexMetrics(const Snapshot& s, FamilyBuilder& out);
void AppendVmMetrics(const Snapshot& s, FamilyBuilder& out);

// Every family, in a stable order.
std::vector<prometheus::MetricFamily> RenderFamilies(const Snapshot& s);
// The text exposition format (what /metrics serves).
std::string RenderText(const Snapshot& s);

// prometheus-cpp Collectable over the current snapshot.
class SnapshotCollectable final : public prometheus::Collectable {
 public:
  explicit SnapshotCollectable(const SnapshotHolder& holder) : holder_(holder) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const SnapshotHolder& holder_;
};

}  // namespace vmtime::exposition
