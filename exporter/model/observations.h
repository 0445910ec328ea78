// Observations: the plain structs collectors return. Values carry their unit
// in the field name; every offset says which clock minus which.
// Each collector owns exactly one section of `Observations`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "scoring/types.h"

namespace vmtime {

// ---- timex: host kernel adjtimex(2) ----
struct TimexObservation {
  int64_t measured_real_ns = 0;
  double offset_s = 0;         // kernel PLL offset (host - reference), seconds
  double frequency_ratio = 0;  // frequency adjustment as a ratio (1e-6 = 1 ppm)
  double max_error_s = 0;
  double est_error_s = 0;
  int status = 0;  // STA_* bit field
  int state = 0;   // adjtimex return value: TIME_OK, TIME_INS, ..., TIME_ERROR
  // The kernel's own flag view: state != TIME_ERROR and !(status & STA_UNSYNC).
  // Not the host's sync state: store/host_reference.h decides that (by maxerror).
  bool synchronised = false;
  double tick_s = 0;  // microseconds per tick, converted
  int tai_offset_s = 0;
  double time_constant = 0;
  double pps_frequency_ratio = 0;
  bool kvm_offset_artifact = false;  // offset was exactly 2^32 ns (counted, not scored)
};

// ---- chrony: host chronyd over its command protocol ----
struct ChronyTracking {
  uint32_t reference_id = 0;
  std::string reference_name;  // IP address or name when known
  int stratum = 0;
  int leap_status = 0;              // 0 normal, 1 insert, 2 delete, 3 unsynchronised
  double ref_time_real_s = 0;       // reference time, seconds since epoch
  double system_time_offset_s = 0;  // chronyd's "System time": local - true, positive = fast
  double last_offset_s = 0;
  double rms_offset_s = 0;
  double frequency_ppm = 0;  // positive = local clock runs fast (as chronyc prints)
  double residual_frequency_ppm = 0;
  double skew_ppm = 0;
  double root_delay_s = 0;
  double root_dispersion_s = 0;
  double update_interval_s = 0;
};
struct ChronySource {
  std::string address;  // IP or refclock name
  std::string name;     // resolved name when available, else address
  int mode = 0;         // 0 server, 1 peer, 2 refclock
  int state = 0;        // 0 selected(*), 1 nonselectable(?), 2 falseticker(x), 3 jittery(~), 4
                        // unselected(+), 5 selectable(-)
  int stratum = 0;
  int poll_log2 = 0;
  int reachability = 0;  // 8-bit register
  uint32_t since_sample_s = 0;
  double orig_latest_offset_s = 0;
  double latest_offset_s = 0;
  double latest_error_s = 0;
  // sourcestats
  std::optional<double> stats_frequency_ppm;
  std::optional<double> stats_skew_ppm;
  std::optional<double> stats_std_dev_s;
  std::optional<double> stats_offset_s;
  std::optional<int> stats_samples;
};
struct ChronyObservation {
  int64_t measured_real_ns = 0;
  ChronyTracking tracking;
  std::vector<ChronySource> sources;
};

// ---- ntp: SNTP probes of upstream servers ----
struct NtpServerObservation {
  std::string server;  // as configured, host[:port]
  int64_t measured_real_ns = 0;
  bool reachable = false;  // a valid reply arrived
  std::string error;       // why not reachable / not usable ("timeout", "kiss-o'-death RATE", ...)
  double offset_s = 0;  // server - host, positive = server ahead (NTP theta, sign: host is behind)
  double delay_s = 0;   // round trip
  int stratum = 0;
  int leap = 0;
  double root_delay_s = 0;
  double root_dispersion_s = 0;
  uint32_t reference_id = 0;
  int precision_log2 = 0;
  std::string kiss_code;  // non-empty for a kiss-o'-death reply
  bool usable = false;    // reachable && leap != 3 && 0 < stratum <= ntp.max_stratum
};
struct NtpObservation {
  std::vector<NtpServerObservation> servers;
};

// ---- libvirt: domains and guest clocks ----
enum class DomainState {
  kUnknown = 0,
  kRunning,
  kBlocked,
  kPaused,
  kShutdown,
  kShutoff,
  kCrashed,
  kSuspended
};
const char* DomainStateName(DomainState s);  // "running", "paused", ...

// Group membership and labels a domain declares in its libvirt metadata
// (docs/libvirt.md, "Groups and labels"), already validated: `group` and
// every label value are valid UTF-8 of bounded length, every label name is a
// Prometheus label name (exported as `label_<name>`), at most kMaxLabels,
// sorted by name, no duplicates.
struct DomainMetadata {
  static constexpr size_t kMaxLabels = 8;
  std::string group;                                        // empty: none declared
  std::vector<std::pair<std::string, std::string>> labels;  // name -> value
  bool operator==(const DomainMetadata&) const = default;
};

struct DomainObservation {
  std::string name;
  std::string uuid;
  DomainState state = DomainState::kUnknown;
  bool agent_up = false;                       // last guest-get-time attempt succeeded
  bool agent_attempted = true;                 // false before the first attempt finished:
                                               // then neither up nor down
  std::string agent_error;                     // last failure, empty when up
  int agent_failures = 0;                      // consecutive failed attempts
  std::optional<scoring::ClockSample> sample;  // newest sample taken since the last Collect
  double rtt_s = 0;                            // round trip of the kept sample (t1 - t0)
  int64_t last_attempt_mono_ns = 0;
};
struct LibvirtObservation {
  bool connected = false;
  std::vector<DomainObservation> domains;  // every domain libvirt lists
  // A harvest between two lists: `domains` holds only the domains with news
  // (a new sample or agent state); the others are unchanged, not vanished.
  bool partial = false;
  // Metadata read (or re-read after a metadata-change event) since the last
  // observation, by uuid; domains not named keep what they had.
  std::vector<std::pair<std::string, DomainMetadata>> metadata;
};

// ---- guest_status: the guest's own time daemon via guest-exec ----
struct GuestStatusObservation {
  std::string uuid;
  std::string daemon;  // "chrony", "ntpd", "timesyncd", "w32time", "none"
  scoring::GuestSyncStatus status;
  std::optional<std::string> reference;  // reference id or name
  std::optional<double> last_offset_s;
  std::optional<double> root_delay_s;
  std::optional<double> root_dispersion_s;
  std::string error;  // parse or exec error, named
};
struct GuestStatusBatch {
  std::vector<GuestStatusObservation> guests;
};

// What one Collect() call produced: the collector fills its own section only.
struct Observations {
  std::optional<TimexObservation> timex;
  std::optional<ChronyObservation> chrony;
  std::optional<NtpObservation> ntp;
  std::optional<LibvirtObservation> libvirt;
  std::optional<GuestStatusBatch> guest_status;
};

}  // namespace vmtime
