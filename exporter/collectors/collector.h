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
  // Optional: the collector asks the poller for an out-of-turn run (libvirt
  // events). The poller installs this callback before the first Collect().
  virtual void SetWakeup(std::function<void()> /*wake*/) {}
};

}  // namespace vmtime
