// The collector table (see collector_table.h).
#include "exporter/config/collector_table.h"

namespace vmtime {
namespace {

// name, help, {enabled, interval_s, timeout_s, max_retries, retry_backoff_s}, sections.
constexpr std::array<CollectorDefinition, 8> kCollectors = {{
    {CollectorId::kTimex,
     "timex",
     "host kernel clock discipline via adjtimex(2)",
     {true, 15, 5, 2, 1},
     ""},
    {CollectorId::kLibvirt,
     "libvirt",
     "domains and guest clocks through libvirt and the QEMU guest agent",
     {true, 15, 10, 2, 1},
     "libvirt"},
    {CollectorId::kChrony,
     "chrony",
     "host chronyd through its command protocol (tracking, sources, sourcestats)",
     {true, 15, 5, 2, 1},
     "chrony"},
    {CollectorId::kNtp,
     "ntp",
     "SNTP probes of the configured upstream NTP servers",
     {true, 64, 10, 1, 1},
     "ntp"},
    {CollectorId::kGuestStatus,
     "guest_status",
     "the guest's own time daemon via fixed read-only guest-exec commands",
     {false, 60, 60, 0, 1},
     "guest_status, libvirt"},
    {CollectorId::kNtpd,
     "ntpd",
     "host ntpd/ntpsec through its mode 6 control protocol (system and peer variables)",
     {false, 15, 5, 1, 1},
     "ntpd"},
    {CollectorId::kTimesyncd,
     "timesyncd",
     "host systemd-timesyncd through D-Bus (org.freedesktop.timesync1) and its flag file",
     {false, 15, 5, 1, 1},
     "timesyncd"},
    {CollectorId::kPtp,
     "ptp",
     "linuxptp ptp4l through its management socket (port state, offset, grandmaster)",
     {false, 15, 5, 2, 1},
     "ptp"},
}};

// Row i describes the collector whose id has value i.
constexpr bool RowsInIdOrder() {
  for (size_t i = 0; i < kCollectors.size(); ++i) {
    if (static_cast<size_t>(kCollectors[i].id) != i) return false;
  }
  return true;
}
static_assert(RowsInIdOrder(), "kCollectors rows must follow the CollectorId order");

}  // namespace

std::span<const CollectorDefinition> CollectorTable() { return kCollectors; }

const CollectorDefinition& CollectorDefinitionOf(CollectorId id) {
  return kCollectors[static_cast<size_t>(id)];
}

std::string_view CollectorName(CollectorId id) { return CollectorDefinitionOf(id).name; }

std::optional<CollectorId> CollectorIdFromName(std::string_view name) {
  for (const auto& c : kCollectors) {
    if (c.name == name) return c.id;
  }
  return std::nullopt;
}

std::map<CollectorId, CollectorConfig> DefaultCollectorConfigs() {
  std::map<CollectorId, CollectorConfig> m;
  for (const auto& c : kCollectors) m.emplace(c.id, c.defaults);
  return m;
}

}  // namespace vmtime
