// LibvirtCollector: every domain libvirt knows, its state, and its guest
// clock read through the QEMU guest agent (virDomainGetTime).
//
// Collect() is cheap and never waits for a guest: it lists the domains (one
// RPC), hands the list to the AgentScheduler, which queues guest-clock
// samples on its own bounded pool of agent workers, and returns what the
// workers have measured so far (Observations::libvirt). Samples arrive
// between Collects; each one is returned once. Resume/start/agent-connected
// events poll that domain at once and call the poller's wakeup callback when
// its new sample is in. See docs/libvirt.md.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "exporter/collectors/collector.h"
#include "exporter/collectors/libvirt/agent_scheduler.h"
#include "exporter/collectors/libvirt/libvirt_api.h"
#include "exporter/config/config.h"

namespace vmtime {

class LibvirtCollector final : public Collector {
 public:
  // Production: a RealLibvirtApi connecting to config.uri (lazily, on the
  // first Collect) and a background watchdog/retry thread.
  LibvirtCollector(const LibvirtConfig& config, const Clock& clock);
  // Tests: any LibvirtApi and scheduler options.
  LibvirtCollector(const LibvirtConfig& config, const Clock& clock,
                   std::shared_ptr<libvirt::LibvirtApi> api,
                   libvirt::SchedulerOptions options = {});
  ~LibvirtCollector() override;

  std::string_view Name() const override { return "libvirt"; }
  Status Collect(const CollectContext& ctx, Observations& out) override;
  void SetWakeup(std::function<void()> wake) override;

  // For tests and benchmarks.
  libvirt::AgentScheduler& scheduler() { return *scheduler_; }

 private:
  std::shared_ptr<libvirt::LibvirtApi> api_;
  std::unique_ptr<libvirt::AgentScheduler> scheduler_;
};

}  // namespace vmtime
