// libFuzzer target: the HTTP routing decision (http/router.h). Input:
// "METHOD\nPATH\nTELEMETRY_PATH\nFLAGS" where FLAGS' first byte picks
// lifecycle on/off and the auth outcome. Invariants: auth is asked at most
// once and never for /healthz; a refused auth wins over everything but
// /healthz; statuses are the documented ones; a 405 names an Allow list and
// only GET/HEAD (POST/PUT for /-/reload) reach an endpoint.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "exporter/http/router.h"

namespace {
std::string_view NextLine(std::string_view& in) {
  const size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
  return line;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::string_view method = NextLine(in);
  const std::string_view path = NextLine(in);
  const std::string_view telemetry = NextLine(in);
  const unsigned flags = in.empty() ? 0 : static_cast<unsigned char>(in[0]);
  vmtime::RouteOptions options{telemetry.empty() ? "/metrics" : telemetry, (flags & 1) != 0};
  const auto outcome = static_cast<vmtime::AuthOutcome>((flags >> 1) % 3);
  int auth_calls = 0;
  const auto d = vmtime::DecideRoute(method, path, options, [&] {
    ++auth_calls;
    return outcome;
  });
  using vmtime::Endpoint;
  if (auth_calls > 1) std::abort();
  if (path == "/healthz" && auth_calls != 0) std::abort();
  if (path != "/healthz" && auth_calls != 1) std::abort();
  if (path != "/healthz" && outcome == vmtime::AuthOutcome::kDenied && d.status != 401) {
    std::abort();
  }
  if (path != "/healthz" && outcome == vmtime::AuthOutcome::kBusy && d.status != 429) {
    std::abort();
  }
  switch (d.status) {
    case 200:
    case 401:
    case 403:
    case 404:
    case 429:
      break;
    case 405:
      if (d.allow.empty()) std::abort();
      break;
    default:
      std::abort();
  }
  const bool get_head = method == "GET" || method == "HEAD";
  const bool post_put = method == "POST" || method == "PUT";
  if (d.endpoint == Endpoint::kReload && (!post_put || !options.lifecycle_enabled)) std::abort();
  if (d.status == 200 && d.endpoint != Endpoint::kReload && !get_head) std::abort();
  if (d.endpoint == Endpoint::kTelemetry && path != options.telemetry_path) std::abort();
  return 0;
}
