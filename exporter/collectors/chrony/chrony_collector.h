// chrony collector: the host chronyd's tracking state and sources, read
// natively over its command protocol (ChronyClient), never via chronyc.
// Also the scoring helper that turns chronyd's tracking into the host's
// reference (host - UTC offset and root distance).
#pragma once

#include <memory>
#include <string_view>

#include "exporter/collectors/chrony/chrony_client.h"
#include "exporter/collectors/collector.h"
#include "exporter/config/config.h"
#include "scoring/types.h"

namespace vmtime {

class ChronyCollector final : public Collector {
 public:
  explicit ChronyCollector(const ChronyConfig& config);
  std::string_view Name() const override { return "chrony"; }
  // Fills out.chrony; on failure leaves it unset and returns a Status such as
  // "chrony: connect unix:///run/chrony/chronyd.sock: Permission denied (...)".
  Status Collect(const CollectContext& ctx, Observations& out) override;

 private:
  ChronyConfig config_;
  std::unique_ptr<chrony::ChronyClient> client_;  // kept open between polls
};

// The host's time reference as chronyd sees it. synchronised = leap != 3,
// stratum < 16 and a reference is set; offset_s = system_time_offset_s
// (host - UTC, positive = host ahead); root_distance_s = root_delay/2 +
// root_dispersion.
scoring::HostReference HostReferenceFromChrony(const ChronyObservation& obs);

}  // namespace vmtime
