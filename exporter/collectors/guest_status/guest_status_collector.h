// GuestStatusCollector: the guest's own time daemon, read through the guest
// agent's guest-exec (opt-in: collectors.guest_status.enabled, off by
// default; docs/guest-status.md).
//
// Each Collect() lists the running domains (GuestAgent::ListRunning; others
// are skipped) and queues a probe (guest_probe.h) for every one that has no
// probe queued or running: never more than one guest-exec in flight per
// guest. A WorkerPool (core/worker_pool.h) of `concurrency` workers runs the
// probes, so total concurrency is bounded and a slow guest holds only its
// own worker. A probe still blocked past ProbeDeadlineNs (every per-call
// timeout plus libvirt's own 30 s job-lock wait) is abandoned by the pool's
// watchdog: the guest is reported "timeout: ..." and not probed again until
// the call returns, and a replacement worker serves the others (at most
// `concurrency` abandoned probes at once).
// Collect() waits for this round's probes until the poller's deadline and
// returns, for every running domain, the newest finished probe (the current
// one or an earlier round's); a probe still running at the deadline keeps
// going and is reported next round. Per-guest failures are observations
// with a named error, not a failed Collect(); only a failure to list the
// domains is.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <vector>

#include "exporter/collectors/collector.h"
#include "exporter/collectors/guest_status/guest_agent.h"
#include "exporter/collectors/guest_status/guest_probe.h"
#include "exporter/collectors/guest_status/outstanding_execs.h"
#include "exporter/config/config.h"
#include "exporter/core/worker_pool.h"

namespace vmtime::guest_status {

struct CollectorOptions {
  ProbeOptions probe;
  int concurrency = 2;  // worker threads, i.e. guests probed at once (>= 1)
  // Outstanding guest-exec pids and running probes, shared with the
  // instances a reload creates (production: OutstandingExecs::Process();
  // nullptr: a table of this instance's own).
  std::shared_ptr<OutstandingExecs> outstanding;
  // Abandoned probes still blocked in libvirt, counted across instances
  // (production: the process-wide counter; nullptr: this instance's own).
  std::shared_ptr<StuckCounter> stuck;
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
  // Stops the probes: those still blocked in libvirt after
  // WorkerPool::kDefaultGrace are left behind and touch nothing of it.
  ~GuestStatusCollector() override;
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
  void Probe(JobContext& ctx, const std::string& uuid);
  void OnAbandon(const std::string& uuid);

  const std::shared_ptr<GuestAgent> agent_;  // co-owned by running probes
  const CollectorOptions options_;           // outstanding set (never null after construction)
  const Clock& clock_;
  Sleeper sleep_;
  std::stop_source stop_;  // requested on destruction; probes hold tokens

  std::mutex mu_;
  std::condition_variable cv_;           // a probe finished
  std::set<std::string> busy_;           // uuids queued or being probed
  std::map<std::string, Guest> guests_;  // running domains by uuid
  std::unique_ptr<WorkerPool> pool_;     // shut down first in the destructor
};

// The real collector: its own read-write libvirt connection to
// config.libvirt.uri under the libvirt connection policy (opened lazily,
// reopened with backoff when it dies), options from
// config.guest_status, concurrency min(config.libvirt.concurrency, 4).
// Returns nullptr when collectors.guest_status.enabled is false, so a
// disabled collector cannot run a single guest-exec.
std::unique_ptr<Collector> MakeGuestStatusCollector(const Config& config, const Clock& clock);

// The process-wide count of abandoned probes (never freed): the real
// collector's stuck budget, kept across reloads.
std::shared_ptr<StuckCounter> ProcessStuckProbes();

// The watchdog deadline of one probe: every agent call's own timeout
// (osinfo, reaping a stuck command, each command's exec and status polls,
// at most exec_timeout_s + 1 s each) plus 30 s, the time libvirt itself may
// wait for a domain's agent job before failing a call.
int64_t ProbeDeadlineNs(const ProbeOptions& options);

}  // namespace vmtime::guest_status
