// The routing decision of the HTTP server as a pure function: method, path
// and the auth outcome in, the endpoint or the refusal (with its HTTP
// status) out. server.cc only carries the decision out, so the rules below
// are unit-tested and fuzzed without a socket:
//   1. /healthz is open (liveness), GET/HEAD only.
//   2. Every other path needs auth when auth is configured: 401, or 429 when
//      the bcrypt budget is spent (see auth.h).
//   3. /-/reload: POST/PUT only (405), and 403 "Lifecycle API is not
//      enabled." unless --web.enable-lifecycle (as Prometheus answers).
//   4. Everything else is GET/HEAD only (405); unknown paths are 404.
#pragma once

#include <functional>
#include <string_view>

#include "exporter/http/auth.h"

namespace vmtime {

enum class Endpoint {
  kHealthz,
  kReadyz,
  kTelemetry,
  kTargets,
  kEvents,
  kStatusPage,
  kReload,
  kNotFound,
  kMethodNotAllowed,
  kUnauthorized,
  kTooManyRequests,
  kLifecycleDisabled,
};

struct RouteOptions {
  std::string_view telemetry_path = "/metrics";
  bool lifecycle_enabled = false;  // --web.enable-lifecycle
};

struct RouteDecision {
  Endpoint endpoint = Endpoint::kNotFound;
  int status = 404;        // HTTP status the endpoint answers with by default
  std::string_view allow;  // Allow header for kMethodNotAllowed
};

// `check_auth` is called at most once, and only for paths that need auth.
RouteDecision DecideRoute(std::string_view method, std::string_view path,
                          const RouteOptions& options,
                          const std::function<AuthOutcome()>& check_auth);

}  // namespace vmtime
