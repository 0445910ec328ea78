// Observations: the plain structs collectors return. Values carry their unit
// in the field name; every offset says which clock minus which.
// Each collector owns exactly one section of `Observations`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "exporter/core/shared_string.h"
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

// ---- ntpd: host ntpd/ntpsec over its mode 6 control protocol ----
struct NtpdPeer {
  uint16_t association_id = 0;
  std::string address;  // srcadr[:srcport]
  bool configured = false;
  bool reachable = false;  // peer status word's reach flag
  int selection = 0;       // peer status selection code 0..7
  std::string condition;   // its name: "sys.peer", "candidate", "reject", ...
  int stratum = 0;
  int reach = 0;  // 8-bit reachability register
  std::string refid;
  double offset_s = 0;  // server - host, positive = host behind
  double delay_s = 0;
  double jitter_s = 0;
};
struct NtpdObservation {
  int64_t measured_real_ns = 0;
  int leap = 0;  // 0 normal, 1 insert, 2 delete, 3 unsynchronised
  int stratum = 0;
  std::string refid;
  double offset_s = 0;  // ntpd's `offset`: server - host, positive = host behind
  double sys_jitter_s = 0;
  double root_delay_s = 0;
  double root_dispersion_s = 0;
  std::string version;
  std::vector<NtpdPeer> peers;  // empty unless ntpd.peers
};

// ---- timesyncd: host systemd-timesyncd over D-Bus / its flag file ----
struct TimesyncdObservation {
  int64_t measured_real_ns = 0;
  bool bus = false;           // the properties came from D-Bus
  bool synchronised = false;  // the flag file exists
  std::string server_name;
  std::string server_address;
  // From NTPMessage, when timesyncd has received one.
  std::optional<int> leap;
  std::optional<int> stratum;      // the server's stratum
  std::optional<double> offset_s;  // server - host of that message, positive = host behind
  std::optional<double> delay_s;
  std::optional<double> root_delay_s;
  std::optional<double> root_dispersion_s;
  std::optional<double> jitter_s;
  std::optional<uint64_t> packet_count;
};

// ---- ptp: linuxptp's ptp4l over its management (UNIX datagram) socket ----
// PTP port states (IEEE 1588-2008 table 8), the values PORT_DATA_SET carries.
enum class PtpPortState : int {
  kUnknown = 0,  // not a value on the wire: no PORT_DATA_SET answer
  kInitializing = 1,
  kFaulty = 2,
  kDisabled = 3,
  kListening = 4,
  kPreMaster = 5,
  kMaster = 6,
  kPassive = 7,
  kUncalibrated = 8,
  kSlave = 9,
};
// "slave", "listening", ...; "unknown" for values outside 1..9.
const char* PtpPortStateName(PtpPortState s);
struct PtpPortObservation {
  int port_number = 0;
  std::string port_identity;  // "clockid-port": "aabbcc.fffe.ddeeff-1" as pmc prints it
  PtpPortState state = PtpPortState::kUnknown;
  int raw_state = 0;  // the wire value, also when outside 1..9
  double peer_mean_path_delay_s = 0;
  int log_announce_interval = 0;
  int announce_receipt_timeout = 0;
  int log_sync_interval = 0;
  int delay_mechanism = 0;  // 1 E2E, 2 P2P, 0xFE disabled
};
struct PtpObservation {
  int64_t measured_real_ns = 0;
  // DEFAULT_DATA_SET: this clock.
  std::string clock_identity;  // "aabbcc.fffe.ddeeff"
  int number_ports = 0;
  int domain_number = 0;
  int clock_class = 0;  // this clock's own class (as a grandmaster it would announce)
  bool slave_only = false;
  // CURRENT_DATA_SET. offset_from_master_s: this clock - master, positive =
  // this clock ahead (ptp4l's "master offset" sign).
  int steps_removed = 0;
  double offset_from_master_s = 0;
  double mean_path_delay_s = 0;
  // PARENT_DATA_SET: the grandmaster this clock follows (itself when it is GM).
  std::string parent_port_identity;
  std::string grandmaster_identity;
  int grandmaster_priority1 = 0;
  int grandmaster_priority2 = 0;
  int grandmaster_clock_class = 0;
  int grandmaster_clock_accuracy = 0;  // 0x20.. as in IEEE 1588 table 6
  int grandmaster_offset_scaled_log_variance = 0;
  // TIME_PROPERTIES_DATA_SET.
  int current_utc_offset_s = 0;  // TAI - UTC the grandmaster announces
  bool leap61 = false;
  bool leap59 = false;
  bool current_utc_offset_valid = false;
  bool ptp_timescale = false;
  bool time_traceable = false;
  bool frequency_traceable = false;
  int time_source = 0;  // 0x10 atomic, 0x20 GPS, ..., 0xA0 internal oscillator
  // TIME_STATUS_NP (linuxptp): absent when ptp4l does not answer it.
  std::optional<double> master_offset_s;  // same sign as offset_from_master_s
  std::optional<bool> gm_present;
  std::optional<std::string> gm_identity_np;
  // PORT_DATA_SET: every port ptp4l answered for (the UDS port excluded).
  std::vector<PtpPortObservation> ports;
  // True when this clock is the grandmaster (grandmasterIdentity = clockIdentity).
  bool IsGrandmaster() const {
    return !clock_identity.empty() && clock_identity == grandmaster_identity;
  }
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
  SharedString group;                                       // empty: none declared
  std::vector<std::pair<std::string, std::string>> labels;  // name -> value
  bool operator==(const DomainMetadata&) const = default;
};

struct DomainObservation {
  SharedString name;
  SharedString uuid;
  DomainState state = DomainState::kUnknown;
  bool agent_up = false;                       // last guest-get-time attempt succeeded
  bool agent_attempted = true;                 // false before the first attempt finished:
                                               // then neither up nor down
  SharedString agent_error;                    // last failure, empty when up
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
  std::vector<std::pair<SharedString, DomainMetadata>> metadata;
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
  std::optional<NtpdObservation> ntpd;
  std::optional<TimesyncdObservation> timesyncd;
  std::optional<PtpObservation> ptp;
};

}  // namespace vmtime
