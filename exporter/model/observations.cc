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

const char* PtpPortStateName(PtpPortState s) {
  switch (s) {
    case PtpPortState::kInitializing:
      return "initializing";
    case PtpPortState::kFaulty:
      return "faulty";
    case PtpPortState::kDisabled:
      return "disabled";
    case PtpPortState::kListening:
      return "listening";
    case PtpPortState::kPreMaster:
      return "pre_master";
    case PtpPortState::kMaster:
      return "master";
    case PtpPortState::kPassive:
      return "passive";
    case PtpPortState::kUncalibrated:
      return "uncalibrated";
    case PtpPortState::kSlave:
      return "slave";
    case PtpPortState::kUnknown:
      break;
  }
  return "unknown";
}

}  // namespace vmtime
