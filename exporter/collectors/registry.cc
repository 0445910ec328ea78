// The factory registry (see registry.h).
#include "exporter/collectors/registry.h"

#include <array>

#include "exporter/collectors/chrony/chrony_collector.h"
#include "exporter/collectors/guest_status/guest_status_collector.h"
#include "exporter/collectors/libvirt/libvirt_collector.h"
#include "exporter/collectors/ntp/ntp_collector.h"
#include "exporter/collectors/ntpd/ntpd_collector.h"
#include "exporter/collectors/ptp/ptp_collector.h"
#include "exporter/collectors/timesyncd/timesyncd_collector.h"
#include "exporter/collectors/timex/timex_collector.h"

namespace vmtime {
namespace {

constexpr std::array<CollectorFactory, 8> kFactories = {{
    {CollectorId::kTimex,
     [](const Config&, const Clock&) -> std::shared_ptr<Collector> {
       return std::make_shared<TimexCollector>();
     }},
    {CollectorId::kLibvirt,
     [](const Config& c, const Clock& clock) -> std::shared_ptr<Collector> {
       return std::make_shared<LibvirtCollector>(c.libvirt, clock);
     }},
    {CollectorId::kChrony,
     [](const Config& c, const Clock&) -> std::shared_ptr<Collector> {
       return std::make_shared<ChronyCollector>(c.chrony);
     }},
    {CollectorId::kNtp,
     [](const Config& c, const Clock&) -> std::shared_ptr<Collector> {
       return std::make_shared<NtpCollector>(c.ntp);
     }},
    {CollectorId::kGuestStatus,
     [](const Config& c, const Clock& clock) -> std::shared_ptr<Collector> {
       return guest_status::MakeGuestStatusCollector(c, clock);
     }},
    {CollectorId::kNtpd,
     [](const Config& c, const Clock&) -> std::shared_ptr<Collector> {
       return std::make_shared<NtpdCollector>(c.ntpd);
     }},
    {CollectorId::kTimesyncd,
     [](const Config& c, const Clock&) -> std::shared_ptr<Collector> {
       return std::make_shared<TimesyncdCollector>(c.timesyncd);
     }},
    {CollectorId::kPtp,
     [](const Config& c, const Clock&) -> std::shared_ptr<Collector> {
       return std::make_shared<PtpCollector>(c.ptp);
     }},
}};

}  // namespace

std::span<const CollectorFactory> CollectorFactories() { return kFactories; }

std::shared_ptr<Collector> MakeCollector(CollectorId id, const Config& config, const Clock& clock) {
  for (const auto& f : kFactories) {
    if (f.id == id) return f.make(config, clock);
  }
  return nullptr;  // unreachable while every table row has a factory (registry_test)
}

}  // namespace vmtime
