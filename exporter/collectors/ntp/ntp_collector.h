// ntp collector: SNTP probes of the configured upstream servers, all sent
// at once and awaited together with poll() until each has answered or its
// deadline passed, so one dead server costs one timeout, not one per server.
// Each request's transmit timestamp is 64 random bits, not the host's clock
// (RFC 5905 with draft-ietf-ntp-data-minimization), and each reply must echo
// them as its origin timestamp (anything else is discarded as stale or
// spoofed, with "origin timestamp mismatch: ..." as the reason if no valid
// reply follows); the send time t1 stays in the exporter; a kiss-o'-death ends the
// probe with its code. Host timestamps come from the injected Clock
// (RealtimeNs), so offset = server - host (positive = host behind).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "exporter/collectors/collector.h"
#include "exporter/config/config.h"

namespace vmtime {

// Probes every server in `config.servers` ("host", "host:port",
// "[v6]:port"; port 123 by default) concurrently; each probe waits at most
// `config.timeout_s` and nobody waits beyond `deadline_mono_ns` (<= 0: no
// extra deadline). Returns one observation per server, in order, each
// judged by JudgeNtpServer. Never throws.
std::vector<NtpServerObservation> ProbeNtpServers(const NtpConfig& config, const Clock& clock,
                                                  int64_t deadline_mono_ns);

// Decides whether a server that answered may be used: leap != 3 and
// 0 < stratum <= max_stratum (stratum 16 is unsynchronised; a stratum above
// max_stratum is typically a server that lost its sources and serves its own
// `local stratum 10` clock). Sets obs.usable, and obs.error when unusable.
// Leaves unreachable servers (and kiss-o'-death replies) as they are.
void JudgeNtpServer(NtpServerObservation& obs, int max_stratum);

class NtpCollector final : public Collector {
 public:
  explicit NtpCollector(const NtpConfig& config);
  std::string_view Name() const override { return "ntp"; }
  // Fills out.ntp with one entry per configured server. Fails (with every
  // server's reason in the message) only when servers are configured and
  // none is usable; the observations are filled either way.
  Status Collect(const CollectContext& ctx, Observations& out) override;

 private:
  NtpConfig config_;
};

}  // namespace vmtime
