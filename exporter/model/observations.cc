#include "exporter/model/observations.h"

namespace vmtime {

const char* DomainStateName(DomainState s) {
  switch (s) {
    case DomainState::kRunning:
      return "running";
    case DomainState::kBlocked:
      return "blocked";
    case DomainState::kPaused:
      return "paused";
    case DomainState::kShutdown:
      return "shutdown";
    case DomainState::kShutoff:
      return "shutoff";
    case DomainState::kCrashed:
      return "crashed";
    case DomainState::kSuspended:
      return "suspended";
    case DomainState::kUnknown:
      break;
  }
  return "unknown";
}

}  // namespace vmtime
