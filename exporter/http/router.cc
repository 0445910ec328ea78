#include "exporter/http/router.h"

namespace vmtime {
namespace {
constexpr std::string_view kGetHead = "GET, HEAD";
constexpr std::string_view kPostPut = "POST, PUT";
}  // namespace

RouteDecision DecideRoute(std::string_view method, std::string_view path,
                          const RouteOptions& options,
                          const std::function<AuthOutcome()>& check_auth) {
  const bool get_or_head = method == "GET" || method == "HEAD";
  if (path == "/healthz") {
    if (!get_or_head) return {Endpoint::kMethodNotAllowed, 405, kGetHead};
    return {Endpoint::kHealthz, 200, {}};
  }
  switch (check_auth ? check_auth() : AuthOutcome::kAllowed) {
    case AuthOutcome::kAllowed:
      break;
    case AuthOutcome::kDenied:
      return {Endpoint::kUnauthorized, 401, {}};
    case AuthOutcome::kBusy:
      return {Endpoint::kTooManyRequests, 429, {}};
  }
  if (path == "/-/reload") {
    if (method != "POST" && method != "PUT") return {Endpoint::kMethodNotAllowed, 405, kPostPut};
    if (!options.lifecycle_enabled) return {Endpoint::kLifecycleDisabled, 403, {}};
    return {Endpoint::kReload, 200, {}};
  }
  if (!get_or_head) return {Endpoint::kMethodNotAllowed, 405, kGetHead};
  if (path == options.telemetry_path) return {Endpoint::kTelemetry, 200, {}};
  if (path == "/readyz") return {Endpoint::kReadyz, 200, {}};
  if (path == "/api/v1/targets") return {Endpoint::kTargets, 200, {}};
  if (path == "/api/v1/events") return {Endpoint::kEvents, 200, {}};
  if (path == "/") return {Endpoint::kStatusPage, 200, {}};
  return {Endpoint::kNotFound, 404, {}};
}

}  // namespace vmtime
