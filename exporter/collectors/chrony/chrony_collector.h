// chrony collector: the host chronyd's tracking state and sources, read
// natively over its command protocol (ChronyClient), never via chronyc.
// What the tracking means for the host's sync state is decided by the store
// (store/host_reference.h), not here: a collector only observes.
#pragma once

#include <memory>
#include <string_view>

#include "exporter/collectors/chrony/chrony_client.h"
#include "exporter/collectors/collector.h"
#include "exporter/config/config.h"

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

}  // namespace vmtime
