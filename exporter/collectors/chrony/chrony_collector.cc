// chrony collector: one tracking query and (optionally) the source list per
// poll, on a client socket kept open between polls and reopened after an
// error (chronyd restarted, socket gone).
#include "exporter/collectors/chrony/chrony_collector.h"

#include <algorithm>
#include <exception>

namespace vmtime {

ChronyCollector::ChronyCollector(const ChronyConfig& config) : config_(config) {}

Status ChronyCollector::Collect(const CollectContext& ctx, Observations& out) {
  try {
    if (!client_) {
      client_ = std::make_unique<chrony::ChronyClient>(config_.address, config_.timeout_s);
    }
    int64_t deadline = ctx.deadline_mono_ns;
    if (deadline <= 0) {
      deadline = ctx.clock.MonotonicNs() + SecondsToNs(std::max(config_.timeout_s, 0.001) * 8);
    }
    ChronyObservation obs;
    auto tracking = client_->Tracking(ctx.clock, deadline);
    if (!tracking) {
      client_->Close();  // start afresh next time
      return tracking.error();
    }
    obs.tracking = std::move(*tracking);
    obs.measured_real_ns = ctx.clock.RealtimeNs();
    if (config_.sources) {
      auto sources = client_->Sources(ctx.clock, deadline);
      if (!sources) {
        client_->Close();
        return sources.error();
      }
      obs.sources = std::move(*sources);
    }
    out.chrony = std::move(obs);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Error{std::string("chrony: unexpected error: ") + e.what()};
  } catch (...) {
    return Error{"chrony: unexpected error"};
  }
}

}  // namespace vmtime
