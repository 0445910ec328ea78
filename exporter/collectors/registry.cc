#include "exporter/collectors/registry.h"

#include <sstream>

#include "exporter/collectors/chrony/chrony_collector.h"
#include "exporter/collectors/guest_status/guest_status_collector.h"
#include "exporter/collectors/libvirt/libvirt_collector.h"
#include "exporter/collectors/ntp/ntp_collector.h"
#include "exporter/collectors/timex/timex_collector.h"

namespace vmtime {
namespace {

std::string LibvirtFingerprint(const Config& c) {
  const auto& l = c.libvirt;
  std::ostringstream os;
  os << l.uri << '|' << l.samples << '|' << l.agent_timeout_s << '|' << l.set_agent_timeout << '|'
     << l.call_deadline_s << '|' << l.concurrency << '|' << l.max_stuck_calls << '|'
     << l.agent_retry_interval_s << '|' << l.agent_max_attempts << '|' << l.agent_backoff_max_s
     << '|' << l.reconnect_backoff_max_s << '|' << l.keepalive_interval_s << '|'
     << l.keepalive_count;
  return os.str();
}

}  // namespace

const std::vector<CollectorSpec>& CollectorTable() {
  static const std::vector<CollectorSpec> kTable = {
      {"timex", "host kernel clock discipline via adjtimex(2)",
       [](const Config&, const Clock&) { return std::make_shared<TimexCollector>(); },
       [](const Config&) { return std::string(); }},
      {"libvirt", "domains and guest clocks through libvirt and the QEMU guest agent",
       [](const Config& c, const Clock& clock) {
         return std::make_shared<LibvirtCollector>(c.libvirt, clock);
       },
       LibvirtFingerprint},
      {"chrony", "host chronyd through its command protocol (tracking, sources, sourcestats)",
       [](const Config& c, const Clock&) { return std::make_shared<ChronyCollector>(c.chrony); },
       [](const Config& c) {
         std::ostringstream os;
         os << c.chrony.address << '|' << c.chrony.timeout_s << '|' << c.chrony.sources;
         return os.str();
       }},
      {"ntp", "SNTP probes of the configured upstream NTP servers",
       [](const Config& c, const Clock&) { return std::make_shared<NtpCollector>(c.ntp); },
       [](const Config& c) {
         std::ostringstream os;
         for (const auto& s : c.ntp.servers) os << s << ',';
         os << '|' << c.ntp.timeout_s;
         return os.str();
       }},
      {"guest_status",
       "the guest's own time daemon via fixed read-only guest-exec commands (off by default)",
       [](const Config& c, const Clock& clock) -> std::shared_ptr<Collector> {
         return guest_status::MakeGuestStatusCollector(c, clock);
       },
       guest_status::GuestStatusFingerprint},
  };
  return kTable;
}

}  // namespace vmtime
