// GuestStatusCollector: the guest's own time daemon, read through the guest
// agent's guest-exec (opt-in: collectors.guest_status.enabled, off by
// default; docs/guest-status.md).
//
// Each Collect() lists the running domains (GuestAgent::ListRunning; others
// are skipped) and queues a probe (guest_probe.h) for every one that has no
// probe queued or running: never more than one guest-exec in flight per
// guest. A fixed pool of `concurrency` worker threads runs the probes, so
// total concurrency is bounded and a slow guest holds only its own worker.
// Collect() waits for this round's probes until the poller's deadline and
// returns, for every running domain, the newest finished probe (the current
// one or an earlier round's); a probe still running at the deadline keeps
// going and is reported next round. Per-guest failures are observations
// with a named error, not a failed Collect(); only a failure to list the
// domains is.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "exporter/collectors/collector.h"
#include "exporter/collectors/guest_status/guest_agent.h"
#include "exporter/collectors/guest_status/guest_probe.h"
#include "exporter/config/config.h"

namespace vmtime::guest_status {

struct CollectorOptions {
  ProbeOptions probe;
  int concurrency = 2;  // worker threads, i.e. guests probed at once (>= 1)
};

// ProbeOptions from the config section; commands with unknown ids are
// skipped (the config parser already rejects them).
CollectorOptions OptionsFromConfig(const Config& config);

class GuestStatusCollector final : public Collector {
 public:
  // `clock` must outlive the collector. `sleep` waits between
  // guest-exec-status polls (default: a real sleep).
  GuestStatusCollector(std::shared_ptr<GuestAgent> agent, CollectorOptions options,
                       const Clock& clock, Sleeper sleep = {});
  ~GuestStatusCollector() override;  // stops and joins the workers
  GuestStatusCollector(const GuestStatusCollector&) = delete;
  GuestStatusCollector& operator=(const GuestStatusCollector&) = delete;

  std::string_view Name() const override { return "guest_status"; }
  Status Collect(const CollectContext& ctx, Observations& out) override;

 private:
  struct Guest {
    std::string name;
    ProbeMemory memory;
    std::optional<GuestStatusObservation> last;  // newest finished probe
  };
  void Work(std::stop_token stop);

  std::shared_ptr<GuestAgent> agent_;
  CollectorOptions options_;
  const Clock& clock_;
  Sleeper sleep_;

  std::mutex mu_;
  std::condition_variable_any cv_;       // queue_ grew, or a probe finished
  std::deque<std::string> queue_;        // uuids waiting for a worker
  std::set<std::string> busy_;           // uuids queued or being probed
  std::map<std::string, Guest> guests_;  // running domains by uuid
  std::vector<std::jthread> workers_;    // last member: joined first
};

// The real collector: its own read-write libvirt connection to
// config.libvirt.uri (opened lazily, reopened when it dies), options from
// config.guest_status, concurrency min(config.libvirt.concurrency, 4).
// Returns nullptr when collectors.guest_status.enabled is false, so a
// disabled collector cannot run a single guest-exec.
std::unique_ptr<Collector> MakeGuestStatusCollector(const Config& config, const Clock& clock);

}  // namespace vmtime::guest_status
