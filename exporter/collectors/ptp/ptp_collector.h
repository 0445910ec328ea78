// ptp collector: linuxptp's ptp4l state (port state, offset from master,
// mean path delay, steps removed, grandmaster identity and quality, time
// properties, TIME_STATUS_NP), read over ptp4l's management socket with
// PtpClient. What the state means for the host's sync status is decided by
// the store (store/host_reference_ptp.h), not here: a collector only
// observes.
//
// phc2sys (linuxptp 3.1) has no management server of its own, so nothing of
// it is read; docs/ptp.md says so.
#pragma once

#include <memory>
#include <string_view>

#include "exporter/collectors/collector.h"
#include "exporter/collectors/ptp/ptp_client.h"
#include "exporter/config/config.h"

namespace vmtime {

class PtpCollector final : public Collector {
 public:
  explicit PtpCollector(const PtpConfig& config);
  std::string_view Name() const override { return "ptp"; }
  // Fills out.ptp; on failure leaves it unset and returns a Status such as
  // "ptp: connect /var/run/ptp4l: No such file or directory (is ptp4l running ...?)".
  Status Collect(const CollectContext& ctx, Observations& out) override;

 private:
  Status CollectInto(const CollectContext& ctx, int64_t deadline, PtpObservation& obs);

  PtpConfig config_;
  std::unique_ptr<ptp::PtpClient> client_;  // kept open between polls
};

}  // namespace vmtime
