// RemediationEngine: carries out the remediation policy (policy.h) on its
// own bounded worker pool, beside the collectors (it does I/O: it is
// collector-like, but it acts instead of observing).
//
// - OnSnapshot() is called with every published snapshot (under the
//   poller's lock): it only keeps the pointer and queues one "decide" job;
//   it never blocks on I/O. The decide job runs Decide() under the engine's
//   own mutex and queues one attempt per kSet action (keyed by uuid).
// - An attempt: host CLOCK_REALTIME read just before virDomainSetTime with
//   that explicit time (seconds/nanoseconds), the call bracketed by host
//   reads; then a fresh guest-get-time measurement (K brackets, smallest
//   round trip, the libvirt collector's clock_bracket.h). Result ok when
//   |offset after| <= uncertainty after + set bracket + verify_tolerance,
//   else not_corrected; failed when a call fails or exceeds call_deadline
//   (the pool's watchdog abandons it: its thread stays blocked in libvirt,
//   detached, and the VM is not tried again until the call returns).
// - Every attempt (and every dry-run intent and refused backward step) is
//   logged at info, emitted as a "remediation" Event and counted through
//   the result callback (the store's vmtime_vm_remediations_total).
// Threads: see docs/architecture.md ("Threads", remediation workers).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "exporter/collectors/libvirt/libvirt_api.h"
#include "exporter/config/config.h"
#include "exporter/core/clock.h"
#include "exporter/core/worker_pool.h"
#include "exporter/events/event.h"
#include "exporter/model/remediation_result.h"
#include "exporter/model/snapshot.h"
#include "exporter/remediation/policy.h"

namespace vmtime::remediation {

// Called on an engine worker, no engine lock held.
using ResultCallback = std::function<void(const std::string& uuid, RemediationResult result)>;

struct EngineOptions {
  // Production: a watchdog thread ticks the pool every 200 ms. Tests with a
  // FakeClock turn it off and call Tick() themselves.
  bool background_tick = true;
};

class RemediationEngine {
 public:
  RemediationEngine(const RemediationConfig& policy, const Clock& clock,
                    std::shared_ptr<libvirt::LibvirtApi> api, std::shared_ptr<EventSink> events,
                    ResultCallback on_result, EngineOptions options = {});
  // Shuts the pool down (grace 500 ms); calls still blocked in libvirt are
  // left behind and touch nothing of the engine.
  ~RemediationEngine();
  RemediationEngine(const RemediationEngine&) = delete;
  RemediationEngine& operator=(const RemediationEngine&) = delete;

  void SetPolicy(const RemediationConfig& policy);
  // Domain metadata per uuid for include_/exclude_metadata (the groups work
  // supplies it; empty until then).
  void SetMetadata(MetadataByUuid metadata);
  // Never blocks on I/O; safe under the poller's lock.
  void OnSnapshot(std::shared_ptr<const Snapshot> snapshot);

  // Tests: a watchdog pass, and a bounded wait until nothing runs.
  void Tick();
  bool WaitIdle(std::chrono::milliseconds timeout);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace vmtime::remediation
