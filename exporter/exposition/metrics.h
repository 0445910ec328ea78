// Exposition of a Snapshot as Prometheus metrics. Pure functions of the
// snapshot: no I/O, no clock reads, and they do not throw (civetweb and
// prometheus-cpp do not catch).
//
// /metrics is RenderText: the exporter and host sections go through
// prometheus-cpp MetricFamily values (FamilyBuilder), the per-VM series
// (all but a few dozen lines at scale) are written straight from the
// snapshot by vm_metrics.h; text_writer.h formats both exactly as
// prometheus-cpp's TextSerializer did. RenderFamilies is the same content as
// MetricFamily values (SnapshotCollectable, tests).
#pragma once

#include <prometheus/collectable.h>

#include <cstddef>
#include <string>
#include <vector>

#include "exporter/exposition/families.h"
#include "exporter/exposition/snapshot_holder.h"
#include "exporter/exposition/vm_metrics.h"  // AppendVmMetrics, AppendVmText

namespace vmtime::exposition {

void AppendSelfMetrics(const Snapshot& s, FamilyBuilder& out);
// vmtime_host_synchronised{source}: the host sync state scoring used
// (Snapshot::host_reference); nothing when it is absent.
void AppendHostMetrics(const Snapshot& s, FamilyBuilder& out);
void AppendTimexMetrics(const Snapshot& s, FamilyBuilder& out);

// Every family, in a stable order.
std::vector<prometheus::MetricFamily> RenderFamilies(const Snapshot& s);
// The exporter and host sections of the text (everything before the per-VM
// families; a few dozen series).
void AppendHostText(const Snapshot& s, std::string& out);
// The text exposition format (what /metrics serves). `reserve_bytes` is
// the capacity reserved up front (0: an estimate from the VM count; the
// metrics cache passes the previous body's size).
std::string RenderText(const Snapshot& s, size_t reserve_bytes = 0);

// The estimate RenderText reserves: the host section plus the size of a
// VM with every per-VM series (bench fleet: about 2.2 kB; unreserved pages
// cost no RSS).
constexpr size_t kHostSectionBytes = 64 * 1024;
constexpr size_t kBytesPerVm = 2560;

// prometheus-cpp Collectable over the current snapshot.
class SnapshotCollectable final : public prometheus::Collectable {
 public:
  explicit SnapshotCollectable(const SnapshotHolder& holder) : holder_(holder) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const SnapshotHolder& holder_;
};

}  // namespace vmtime::exposition
