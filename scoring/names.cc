// Stable snake_case names of components and reasons: the values of the
// `component` and `reason` labels in docs/metrics.md. Changing one is a
// change to the metric contract.
#include "scoring/types.h"

namespace vmtime::scoring {

std::string_view ComponentName(Component c) {
  switch (c) {
    case Component::kOffset:
      return "offset";
    case Component::kSyncState:
      return "sync_state";
    case Component::kStratum:
      return "stratum";
    case Component::kDrift:
      return "drift";
    case Component::kStability:
      return "stability";
    case Component::kFreshness:
      return "freshness";
    case Component::kHostReference:
      return "host_reference";
    case Component::kCount:
      break;
  }
  return "unknown";
}

std::string_view ReasonName(Reason r) {
  switch (r) {
    case Reason::kOffsetElevated:
      return "offset_elevated";
    case Reason::kOffsetHigh:
      return "offset_high";
    case Reason::kOffsetCritical:
      return "offset_critical";
    case Reason::kResumedBehind:
      return "resumed_behind";
    case Reason::kClockStopped:
      return "clock_stopped";
    case Reason::kStepBackward:
      return "step_backward";
    case Reason::kStepForward:
      return "step_forward";
    case Reason::kDriftHigh:
      return "drift_high";
    case Reason::kUnsynchronised:
      return "unsynchronised";
    case Reason::kGuestSyncUnknown:
      return "guest_sync_unknown";
    case Reason::kStratumHigh:
      return "stratum_high";
    case Reason::kLeapPending:
      return "leap_pending";
    case Reason::kStale:
      return "stale";
    case Reason::kAgentUnreachable:
      return "agent_unreachable";
    case Reason::kHostUnsynchronised:
      return "host_unsynchronised";
    case Reason::kHostStratumHigh:
      return "host_stratum_high";
    case Reason::kNoData:
      return "no_data";
    case Reason::kGroupSkew:
      return "group_skew";
    case Reason::kCount:
      break;
  }
  return "unknown";
}

std::string_view BandName(Band b) {
  switch (b) {
    case Band::kGood:
      return "good";
    case Band::kDegraded:
      return "degraded";
    case Band::kBad:
      return "bad";
  }
  return "unknown";
}

}  // namespace vmtime::scoring
