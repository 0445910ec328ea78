// vmtime_zabbix_check: Zabbix external check / UserParameter program for
// vmtime-exporter. It fetches the exporter's GET /api/v1/targets (a snapshot,
// no I/O to guests at request time) and prints one value:
//
//   vmtime_zabbix_check [--timeout SECONDS] <exporter-url> discovery
//   vmtime_zabbix_check [--timeout SECONDS] <exporter-url> <vm name or uuid> <key>
//
// <exporter-url> is http://host:port (the path /api/v1/targets is appended
// unless the URL already ends with it); user:password@ enables basic auth.
// Output goes to stdout, one line; errors go to stderr, one line naming what
// failed, with these exit codes:
//   1 usage (bad arguments, unknown key)   2 exporter unreachable or HTTP error
//   3 bad JSON from the exporter           4 unknown VM
//   5 the value is unknown now (e.g. no good sample yet; null in the API)
// docs/integrations.md documents the keys and the Zabbix set-up.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dashboards/zabbix/check/http_get.h"
#include "dashboards/zabbix/check/targets.h"
#include "exporter/core/clock.h"

namespace vmtime::zabbix {
namespace {

constexpr int kExitUsage = 1;
constexpr int kExitUnreachable = 2;
constexpr int kExitBadJson = 3;
constexpr int kExitUnknownVm = 4;
constexpr int kExitUnknownValue = 5;
constexpr std::string_view kTargetsPath = "/api/v1/targets";

int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "vmtime_zabbix_check: %s\n", message.c_str());
  return code;
}

std::string KnownKeysText() {
  std::string keys;
  for (const std::string& k : KnownKeys()) keys += (keys.empty() ? "" : ", ") + k;
  return keys;
}

void PrintUsage(std::FILE* out) {
  std::fprintf(out,
               "usage: vmtime_zabbix_check [--timeout SECONDS] <exporter-url> discovery\n"
               "       vmtime_zabbix_check [--timeout SECONDS] <exporter-url> <vm name or uuid> "
               "<key>\n"
               "exporter-url: http://[user:password@]host:port (reads /api/v1/targets)\n"
               "keys: %s\n"
               "exit codes: 1 usage, 2 exporter unreachable, 3 bad JSON, 4 unknown VM, "
               "5 value unknown now\n",
               KnownKeysText().c_str());
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Consumes a leading --timeout SECONDS / --timeout=SECONDS into `options`.
// Returns the exit code of a bad value (already reported), else nullopt.
std::optional<int> ReadTimeoutFlag(std::vector<std::string_view>& args, HttpOptions& options) {
  if (args.empty() || (args[0] != "--timeout" && args[0].rfind("--timeout=", 0) != 0)) {
    return std::nullopt;
  }
  std::string value;
  if (args[0] == "--timeout") {
    if (args.size() < 2) return Fail(kExitUsage, "--timeout needs a value in seconds");
    value = std::string(args[1]);
    args.erase(args.begin(), args.begin() + 2);
  } else {
    value = std::string(args[0].substr(10));
    args.erase(args.begin());
  }
  char* end = nullptr;
  double t = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || !(t > 0) || t > 300) {
    return Fail(kExitUsage, "--timeout '" + value + "': expected seconds in (0, 300]");
  }
  options.total_timeout_s = t;
  options.connect_timeout_s = std::min(t, options.connect_timeout_s);
  return std::nullopt;
}

// GET <exporter-url>/api/v1/targets into `doc`. Returns 0, or the exit code
// of the failure (already reported).
int FetchTargets(std::string_view exporter_url, const HttpOptions& options, nlohmann::json& doc) {
  auto url = ParseHttpUrl(exporter_url);
  if (!url) return Fail(kExitUsage, url.error().message);
  if (!EndsWith(url->path, kTargetsPath)) {
    while (!url->path.empty() && url->path.back() == '/') url->path.pop_back();
    url->path += kTargetsPath;
  }
  auto response = HttpGet(*url, options, SystemClock::Instance());
  if (!response) return Fail(kExitUnreachable, response.error().message);
  if (response->status != 200) {
    std::string snippet = response->body.substr(0, 200);
    for (char& c : snippet) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    return Fail(kExitUnreachable, "exporter answered HTTP " + std::to_string(response->status) +
                                      " " + response->reason + " for " + url->path +
                                      (snippet.empty() ? "" : ": " + snippet));
  }
  auto parsed = ParseTargets(response->body);
  if (!parsed) return Fail(kExitBadJson, parsed.error().message);
  doc = std::move(*parsed);
  return 0;
}

// Prints `key` of the VM named (or with UUID) `vm_name`; returns the exit code.
int PrintVmValue(const nlohmann::json& doc, std::string_view exporter_url, std::string_view vm_name,
                 std::string_view key) {
  const nlohmann::json* vm = FindVm(doc, vm_name);
  if (vm == nullptr) {
    return Fail(kExitUnknownVm, "no VM named or with UUID '" + std::string(vm_name) + "' at " +
                                    std::string(exporter_url) + " (" +
                                    std::to_string(doc["vms"].size()) + " VMs listed)");
  }
  Lookup value = VmValue(doc, *vm, key);
  if (!value.ok) {
    switch (value.failure.kind) {
      case LookupError::kUnknownKey:
        return Fail(kExitUsage, value.failure.message);
      case LookupError::kUnknownVm:
        return Fail(kExitUnknownVm, value.failure.message);
      case LookupError::kUnknownValue:
        return Fail(kExitUnknownValue, value.failure.message);
      case LookupError::kBadDocument:
        return Fail(kExitBadJson, value.failure.message);
    }
  }
  std::printf("%s\n", value.value.c_str());
  return 0;
}

int Run(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "-h" || args[0] == "--help")) {
    PrintUsage(stdout);
    return 0;
  }
  HttpOptions options;
  if (auto bad = ReadTimeoutFlag(args, options)) return *bad;
  const bool discovery = args.size() == 2 && args[1] == "discovery";
  if (!discovery && args.size() != 3) {
    PrintUsage(stderr);
    return Fail(kExitUsage, "expected 2 or 3 arguments, got " + std::to_string(args.size()));
  }
  if (!discovery && !IsKnownKey(args[2])) {
    return Fail(kExitUsage,
                "unknown key '" + std::string(args[2]) + "' (known keys: " + KnownKeysText() + ")");
  }
  nlohmann::json doc;
  if (int failed = FetchTargets(args[0], options, doc); failed != 0) return failed;
  if (discovery) {
    std::printf("%s\n", DiscoveryJson(doc).c_str());
    return 0;
  }
  return PrintVmValue(doc, args[0], args[1], args[2]);
}

}  // namespace
}  // namespace vmtime::zabbix

int main(int argc, char** argv) { return vmtime::zabbix::Run(argc, argv); }
