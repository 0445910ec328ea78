// Event <-> JSON and the /api/v1/events query parser (see event_json.h).
#include "exporter/events/event_json.h"

#include <fmt/format.h>

#include <charconv>
#include <ctime>

namespace vmtime {
namespace {

Result<uint64_t> ParseUnsigned(std::string_view name, std::string_view text, uint64_t max) {
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v > max) {
    return Error{fmt::format("{}: '{}' is not an integer in 0..{}", name, text.substr(0, 64), max)};
  }
  return v;
}

}  // namespace

std::string Rfc3339Nano(int64_t real_ns) {
  int64_t secs = real_ns / 1'000'000'000;
  int64_t frac = real_ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --secs;
  }
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

nlohmann::json EventToJson(const Event& event, const std::string& host) {
  nlohmann::json j = nlohmann::json::object();
  j["id"] = event.id;
  j["time"] = Rfc3339Nano(event.time_real_ns);
  j["host"] = host;
  j["type"] = event.type;
  j["domain"] = event.domain.empty() ? nlohmann::json() : nlohmann::json(event.domain);
  j["uuid"] = event.uuid.empty() ? nlohmann::json() : nlohmann::json(event.uuid);
  j["before"] = event.before;
  j["after"] = event.after;
  j["values"] = event.values.is_null() ? nlohmann::json::object() : event.values;
  return j;
}

Result<EventsQuery> ParseEventsQuery(std::string_view query) {
  EventsQuery q;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    const std::string_view key = part.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : part.substr(eq + 1);
    if (key == "since") {
      auto v = ParseUnsigned("since", value, UINT64_MAX);
      if (!v) return v.error();
      q.since = *v;
    } else if (key == "limit") {
      auto v = ParseUnsigned("limit", value, kMaxEventsLimit);
      if (!v) return v.error();
      if (*v == 0) return Error{"limit: must be at least 1"};
      q.limit = static_cast<size_t>(*v);
    } else {
      return Error{fmt::format("unknown parameter '{}' (known: since, limit)", key.substr(0, 64))};
    }
  }
  return q;
}

}  // namespace vmtime
