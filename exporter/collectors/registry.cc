#include "exporter/collectors/registry.h"

#include <sstream>

#include "exporter/collectors/libvirt/libvirt_collector.h"
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
  };
  return kTable;
}

}  // namespace vmtime
