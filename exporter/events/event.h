// Event: one change of a VM's or the host's clock state, as the audit trail
// records it (docs/audit.md has the JSON schema). Anything that notices a
// change (the snapshot differ, the remediation engine, the reload path)
// hands an Event to an EventSink; the sink assigns the id and the host name,
// appends to the in-memory ring and, when audit.file is configured, to the
// JSON-lines trail. Emit never blocks on disk and never throws.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace vmtime {

struct Event {
  uint64_t id = 0;           // assigned by the sink: monotonically increasing, never reused
  int64_t time_real_ns = 0;  // host realtime when the change was observed
  std::string type;          // e.g. "reason_raised", "step_detected", "remediation"
  std::string domain;        // empty for host events
  std::string uuid;          // empty for host events
  nlohmann::json before;     // state before the change (null when not applicable)
  nlohmann::json after;      // state after the change (null when not applicable)
  nlohmann::json values;     // measured values (offset_s, uncertainty_s, step_s, ...)
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Thread safe, cheap, never blocks on I/O, never throws.
  virtual void Emit(Event event) = 0;
};

// A sink that drops everything (audit off, unit tests).
class NullEventSink final : public EventSink {
 public:
  void Emit(Event /*event*/) override {}
};

}  // namespace vmtime
