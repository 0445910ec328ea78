// Test helper: the "explained scores" rule of docs/scoring.md, checked from
// the outside of the scoring library. For a ScoreResult and its Params:
// - every measured component that loses more than explain_min_points of the
//   100 (its weight share of the mean times what it lacks of 1) has at least
//   one active reason that names it (ReasonsNaming);
// - the score is never below min(uncapped mean, caps of the active gated
//   reasons): every cap that lowered it has its reason active;
// - the score is never above the uncapped mean, and a component that was
//   not measured holds 1.
// Used by the property tests (randomised inputs and Params) and by every row
// of the scenario table.
#pragma once

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "scoring/params.h"
#include "scoring/types.h"

namespace vmtime::scoring::testing {

// The reasons that name a loss of component `c` (docs/scoring.md).
inline std::vector<Reason> ReasonsNaming(Component c) {
  using R = Reason;
  switch (c) {
    case Component::kOffset:
      return {R::kOffsetElevated, R::kOffsetHigh, R::kOffsetCritical, R::kResumedBehind,
              R::kNoData};
    case Component::kSyncState:
      return {R::kUnsynchronised, R::kGuestSyncUnknown};
    case Component::kStratum:
      return {R::kStratumHigh, R::kUnsynchronised};
    case Component::kDrift:
      return {R::kDriftHigh, R::kNoData};
    case Component::kStability:
      return {R::kClockStopped, R::kStepBackward, R::kStepForward, R::kNoData};
    case Component::kFreshness:
      return {R::kStale, R::kNoData};
    case Component::kHostReference:
      return {R::kHostUnsynchronised, R::kHostStratumHigh};
    case Component::kCount:
      break;
  }
  return {};
}

// The gated reasons and their caps.
struct GateRule {
  Reason reason;
  double Params::*cap;
};
inline std::vector<GateRule> Gates() {
  return {{Reason::kClockStopped, &Params::gate_clock_stopped_max},
          {Reason::kOffsetCritical, &Params::gate_offset_critical_max},
          {Reason::kOffsetHigh, &Params::gate_offset_high_max},
          {Reason::kAgentUnreachable, &Params::gate_agent_unreachable_max},
          {Reason::kStratumHigh, &Params::gate_stratum_max},
          {Reason::kResumedBehind, &Params::gate_resumed_behind_max}};
}

inline std::array<double, kComponentCount> Weights(const Params& p) {
  return {p.weight_offset,    p.weight_sync_state, p.weight_stratum,       p.weight_drift,
          p.weight_stability, p.weight_freshness,  p.weight_host_reference};
}

// Points (of 100) that component `c` costs in `r`: 0 when not measured.
inline double PointsLost(const ScoreResult& r, const Params& p, Component c) {
  const auto w = Weights(p);
  double measured_w = 0;
  for (int i = 0; i < kComponentCount; ++i) measured_w += r.measured[i] ? w[i] : 0;
  const int i = static_cast<int>(c);
  if (!r.measured[i] || !(measured_w > 0)) return 0;
  return 100 * w[i] / measured_w * (1 - r.components[i]);
}

// "" when `r` is explained, else what is not.
inline std::string Unexplained(const ScoreResult& r, const Params& p) {
  auto active = [&r](Reason x) {
    return std::find(r.reasons.begin(), r.reasons.end(), x) != r.reasons.end();
  };
  std::string bad;
  const auto w = Weights(p);
  double sum_w = 0, sum = 0;
  for (int i = 0; i < kComponentCount; ++i) {
    const auto c = static_cast<Component>(i);
    const std::string name(ComponentName(c));
    if (!r.measured[i]) {
      if (r.components[i] != 1)
        bad += name + " is not measured but holds " + std::to_string(r.components[i]) + "; ";
      continue;
    }
    sum_w += w[i];
    sum += w[i] * r.components[i];
    const double lost = PointsLost(r, p, c);
    if (lost <= p.explain_min_points) continue;
    const auto naming = ReasonsNaming(c);
    if (std::none_of(naming.begin(), naming.end(), active)) {
      bad += name + " loses " + std::to_string(lost) + " points without a reason; ";
    }
  }
  const double uncapped = sum_w > 0 ? 100 * sum / sum_w : 0;
  double floor = uncapped;
  for (const GateRule& g : Gates()) {
    if (active(g.reason)) floor = std::min(floor, p.*g.cap);
  }
  floor = std::clamp(floor, 0.0, 100.0);
  if (r.score < floor - 1e-9) {
    bad += "score " + std::to_string(r.score) + " is below " + std::to_string(floor) +
           " (uncapped mean and the caps of the active gated reasons): an unnamed cap; ";
  }
  if (r.score > std::clamp(uncapped, 0.0, 100.0) + 1e-9) {
    bad += "score " + std::to_string(r.score) + " is above the weighted mean " +
           std::to_string(uncapped) + "; ";
  }
  return bad;
}

}  // namespace vmtime::scoring::testing
