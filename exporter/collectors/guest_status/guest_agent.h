// GuestAgent: the small interface between the guest_status logic and the
// guest agent transport. The real one (libvirt_guest_agent.h) sends JSON
// through virDomainQemuAgentCommand; unit tests use a scripted fake, so
// command selection, the guest-exec polling loop and parsing are tested
// without libvirt.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "exporter/core/result.h"

namespace vmtime::guest_status {

struct RunningDomain {
  std::string name;
  std::string uuid;
};

class GuestAgent {
 public:
  virtual ~GuestAgent() = default;
  // Sends one agent command (a JSON object text such as
  // {"execute":"guest-exec","arguments":{...}}) to the domain with this
  // uuid and returns the reply's JSON text ({"return": ...}). timeout_s is
  // the agent's reply deadline in whole seconds (>= 1). An agent-side
  // error ({"error": ...}, e.g. a program that does not exist) is an Error
  // whose message carries the agent's description.
  virtual Result<std::string> Command(const std::string& uuid, const std::string& json,
                                      int timeout_s) = 0;
  // Domains that are running now (others are skipped).
  virtual Result<std::vector<RunningDomain>> ListRunning() = 0;
};

}  // namespace vmtime::guest_status
