// Collector: one data source, I/O only.
//
// A collector reads the world and returns plain observations; it never
// scores, stores or renders. The poller calls Collect() on its interval on a
// worker thread with a deadline; a collector must return by the deadline
// where the underlying API allows it (sockets with timeouts), and must catch
// everything at its boundary: failures are a Status with a message that
// names what failed, which the poller logs and turns into
// vmtime_collector_success{collector} 0.
#pragma once

#include <cstdint>
#include <functional>
#include <stop_token>
#include <string_view>

#include "exporter/core/clock.h"
#include "exporter/core/result.h"
#include "exporter/model/observations.h"

namespace vmtime {

struct CollectContext {
  const Clock& clock;
  int64_t deadline_mono_ns = 0;  // give up by this host-monotonic time
  std::stop_token stop;          // set when the exporter shuts down
};

class Collector {
 public:
  virtual ~Collector() = default;
  virtual std::string_view Name() const = 0;
  // Fills this collector's section of `out`. Must not throw.
  virtual Status Collect(const CollectContext& ctx, Observations& out) = 0;
  // Optional: the poller installs this callback before the first Collect().
  // The collector calls it (from any thread; it is cheap and never blocks)
  // when it has new data, e.g. samples its own workers took between runs or
  // after a libvirt event. The poller then calls Harvest() soon (coalesced,
  // a few times per second at most), or Collect() out of turn when the
  // collector has no harvest path.
  virtual void SetWakeup(std::function<void()> /*wake*/) {}
  // Optional harvest path: fills `out` with what the collector measured
  // since its last Collect() or Harvest() WITHOUT any I/O (no RPC, no
  // socket), so the poller can publish it at once. Leaves `out` empty when
  // there is nothing new. Returns false when the collector has no harvest
  // path. Must not throw.
  virtual bool Harvest(Observations& /*out*/) { return false; }
};

}  // namespace vmtime
