// LibvirtCollector: every domain libvirt knows, its state, and its guest
// clock read through the QEMU guest agent (virDomainGetTime).
//
// Collect() is cheap and never waits for a guest: it lists the domains (one
// RPC), hands the list to the AgentScheduler, which queues guest-clock
// samples on its own pool of agent workers, and returns what the workers
// have measured so far (Observations::libvirt). Samples arrive between
// Collects: the scheduler calls the poller's wakeup callback when one is
// stored, and Harvest() hands out the domains with news without listing
// again (no I/O), so a sample is published within a fraction of a second.
// Each sample is handed out once. Resume/start/agent-connected events poll
// that domain at once. Each domain's group and labels come from its
// metadata (metadata_reader.h), read at discovery and on metadata-change
// events, and are handed out once per change. See docs/libvirt.md.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "exporter/collectors/collector.h"
#include "exporter/collectors/libvirt/agent_scheduler.h"
#include "exporter/collectors/libvirt/libvirt_api.h"
#include "exporter/collectors/libvirt/metadata_reader.h"
#include "exporter/config/config.h"

namespace vmtime {

class LibvirtCollector final : public Collector {
 public:
  // Production: a RealLibvirtApi connecting to config.uri (lazily, on the
  // first Collect) and a background watchdog/retry thread.
  LibvirtCollector(const LibvirtConfig& config, const Clock& clock);
  // Tests: any LibvirtApi and scheduler options.
  LibvirtCollector(const LibvirtConfig& config, const Clock& clock,
                   std::shared_ptr<libvirt::LibvirtApi> api, libvirt::SchedulerOptions options = {},
                   bool background_metadata_tick = true);
  ~LibvirtCollector() override;

  std::string_view Name() const override { return "libvirt"; }
  Status Collect(const CollectContext& ctx, Observations& out) override;
  void SetWakeup(std::function<void()> wake) override;
  bool Harvest(Observations& out) override;

  // For tests and benchmarks.
  libvirt::AgentScheduler& scheduler() { return *scheduler_; }
  // Null when libvirt.metadata and libvirt.nova_metadata are both off.
  libvirt::MetadataReader* metadata_reader() { return metadata_.get(); }

 private:
  std::shared_ptr<libvirt::LibvirtApi> api_;
  std::unique_ptr<libvirt::AgentScheduler> scheduler_;
  std::unique_ptr<libvirt::MetadataReader> metadata_;
};

}  // namespace vmtime
