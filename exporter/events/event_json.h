// The JSON form of an Event, one object per line of the trail and per entry
// of /api/v1/events (schema: docs/audit.md), and the query of that endpoint.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "exporter/core/result.h"
#include "exporter/events/event.h"

namespace vmtime {

// "2026-12-01T20:30:00.123456789Z" (UTC, nanoseconds).
std::string Rfc3339Nano(int64_t real_ns);

// {"id", "time", "host", "type", "domain", "uuid", "before", "after", "values"};
// domain and uuid are null for host events.
nlohmann::json EventToJson(const Event& event, const std::string& host);

struct EventsQuery {
  uint64_t since = 0;  // events with a larger id
  size_t limit = 500;  // at most this many (1..kMaxEventsLimit)
};
inline constexpr size_t kMaxEventsLimit = 1000;

// Parses "since=ID&limit=N" (both optional; other parameters are errors,
// named with their value cut to 64 bytes).
Result<EventsQuery> ParseEventsQuery(std::string_view query);

}  // namespace vmtime
