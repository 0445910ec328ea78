// See libvirt_collector.h.
#include "exporter/collectors/libvirt/libvirt_collector.h"

#include <spdlog/spdlog.h>

#include <exception>

#include "exporter/collectors/libvirt/real_libvirt_api.h"

namespace vmtime {
namespace {

// The real collector's scheduler: background watchdog, and the stuck-call
// budget shared with the instances before and after it (reloads).
libvirt::SchedulerOptions ProductionOptions() {
  libvirt::SchedulerOptions o;
  o.stuck_calls = libvirt::ProcessStuckAgentCalls();
  return o;
}

}  // namespace

LibvirtCollector::LibvirtCollector(const LibvirtConfig& config, const Clock& clock)
    : LibvirtCollector(config, clock, std::make_shared<libvirt::RealLibvirtApi>(config, clock),
                       ProductionOptions()) {}

LibvirtCollector::LibvirtCollector(const LibvirtConfig& config, const Clock& clock,
                                   std::shared_ptr<libvirt::LibvirtApi> api,
                                   libvirt::SchedulerOptions options, bool background_metadata_tick)
    : api_(std::move(api)),
      scheduler_(std::make_unique<libvirt::AgentScheduler>(config, clock, api_, options)) {
  libvirt::AgentScheduler* scheduler = scheduler_.get();
  api_->SetEventHandler(
      [scheduler](const std::string& uuid, const std::string& name, libvirt::DomainEvent event) {
        scheduler->OnEvent(uuid, name, event);
      });
  if (config.metadata || config.nova_metadata) {
    libvirt::MetadataOptions mo;
    mo.vmtime = config.metadata;
    mo.nova = config.nova_metadata;
    mo.call_deadline_s = config.call_deadline_s;
    mo.background_tick = background_metadata_tick;
    metadata_ = std::make_unique<libvirt::MetadataReader>(clock, api_, mo);
    libvirt::MetadataReader* reader = metadata_.get();
    api_->SetMetadataHandler([reader](const std::string& uuid, const std::string& name) {
      reader->Invalidate(uuid, name);
    });
  }
}

LibvirtCollector::~LibvirtCollector() {
  api_->SetEventHandler(nullptr);  // no event may reach the scheduler being destroyed
  api_->SetMetadataHandler(nullptr);
  scheduler_.reset();
  metadata_.reset();
}

void LibvirtCollector::SetWakeup(std::function<void()> wake) {
  if (metadata_) metadata_->SetWakeup(wake);
  scheduler_->SetWakeup(std::move(wake));
}

bool LibvirtCollector::Harvest(Observations& out) {
  try {
    LibvirtObservation obs;
    obs.partial = true;
    obs.domains = scheduler_->Harvest();
    if (metadata_) obs.metadata = metadata_->TakeChanged();
    if (obs.domains.empty() && obs.metadata.empty()) return true;
    obs.connected = api_->Connected();
    out.libvirt = std::move(obs);
  } catch (const std::exception& e) {
    spdlog::warn("libvirt collector: harvest failed: {}", e.what());
  }
  return true;
}

Status LibvirtCollector::Collect(const CollectContext& /*ctx*/, Observations& out) {
  try {
    Result<std::vector<libvirt::DomainInfo>> list = api_->ListDomains();
    LibvirtObservation obs;
    if (!list.ok()) {
      // Keep reporting the last known domains (their samples go stale) so a
      // libvirtd restart does not make every VM vanish for a round.
      obs.connected = false;
      obs.domains = scheduler_->Current();
      out.libvirt = std::move(obs);
      return list.error();
    }
    obs.domains = scheduler_->Update(*list);
    obs.connected = api_->Connected();
    if (metadata_) {
      metadata_->Reconcile(*list, api_->ConnectionGeneration());
      obs.metadata = metadata_->TakeChanged();
    }
    scheduler_->Tick();
    out.libvirt = std::move(obs);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Error{std::string("libvirt collector: ") + e.what()};
  } catch (...) {
    return Error{"libvirt collector: unknown exception"};
  }
}

}  // namespace vmtime
