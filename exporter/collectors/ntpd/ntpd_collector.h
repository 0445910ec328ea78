// ntpd collector: the host's ntpd or ntpsec through its mode 6 control
// protocol (mode6.h), as `ntpq -c rv -c as` would ask, over a connected UDP
// socket to `ntpd.address` (127.0.0.1:123 by default). Read-only: READVAR
// of association 0 (system variables) and, with `ntpd.peers`, READSTAT for
// the association list and READVAR of each association.
//
// Each exchange carries a fresh sequence number; datagrams of other
// sequences are skipped; a request is resent when no complete answer came
// within a third of `ntpd.timeout_s`. Errors are named: "no answer" (ntpd
// not running there, or `restrict ... noquery` dropping mode 6), "refused"
// (ICMP port unreachable: nothing listens), an error response by its code
// ("administratively prohibited (restricted)", "authentication failure"),
// or a malformed reply with what and where.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "exporter/collectors/collector.h"
#include "exporter/collectors/ntpd/mode6.h"
#include "exporter/config/config.h"

namespace vmtime {

class Mode6Client {
 public:
  // `address` "host[:port]" or "[v6]:port" (port 123 by default).
  Mode6Client(std::string address, double request_timeout_s);
  ~Mode6Client();
  Mode6Client(const Mode6Client&) = delete;
  Mode6Client& operator=(const Mode6Client&) = delete;

  // One request and its reassembled answer (data, status word).
  struct Answer {
    std::string data;
    uint16_t status = 0;
  };
  Result<Answer> Exchange(uint8_t opcode, uint16_t association_id, std::string_view request_data,
                          const Clock& clock, int64_t deadline_mono_ns);
  void Close();

 private:
  Status Open();

  std::string address_;
  double request_timeout_s_;
  int fd_ = -1;
  uint16_t sequence_ = 0;
};

// Reads the system variables and (when `with_peers`) every association.
Result<NtpdObservation> ReadNtpd(Mode6Client& client, bool with_peers, const Clock& clock,
                                 int64_t deadline_mono_ns);

class NtpdCollector final : public Collector {
 public:
  explicit NtpdCollector(const NtpdConfig& config);
  std::string_view Name() const override { return "ntpd"; }
  Status Collect(const CollectContext& ctx, Observations& out) override;

 private:
  NtpdConfig config_;
  Mode6Client client_;
};

}  // namespace vmtime
