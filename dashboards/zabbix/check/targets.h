// The data side of vmtime_zabbix_check: parses the exporter's
// GET /api/v1/targets document (docs/api.md), finds a VM by name or UUID,
// renders low-level discovery JSON and turns an item key into one value.
// Pure functions, no I/O: tests/unit/zabbix_check_test.cc covers them.
//
// Values are printed the way Zabbix stores them: numbers in plain decimal
// (seconds, ratios, 0..100 scores), booleans as 1/0, texts as is. Offsets
// are guest clock minus reference (host CLOCK_REALTIME for `offset`, UTC
// for `utc_offset`), in seconds, positive = guest ahead.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "exporter/core/result.h"

namespace vmtime::zabbix {

// Why a lookup failed; main() maps these to exit codes.
enum class LookupError {
  kUnknownKey,    // the key is not one KnownKeys() lists
  kUnknownVm,     // no VM with that name or UUID
  kUnknownValue,  // the VM has no value for the key now (null in the API)
  kBadDocument,   // the field has an unexpected type
};

struct LookupFailure {
  LookupError kind;
  std::string message;  // names the VM and the key
};

// Parses and shape-checks the document: an object with a "vms" array of
// objects that each have string "domain" and "uuid". The error names the
// first offending element ("vms[3].uuid: expected a string").
Result<nlohmann::json> ParseTargets(std::string_view body);

// The VM whose domain name equals `name_or_uuid` exactly, else whose UUID
// equals it ignoring case; nullptr when none does.
const nlohmann::json* FindVm(const nlohmann::json& doc, std::string_view name_or_uuid);

// Low-level discovery: a JSON array with one object per VM holding the macros
// {#VM.NAME}, {#VM.UUID} and {#VM.STATE}.
std::string DiscoveryJson(const nlohmann::json& doc);

// Every per-VM key the check supports (for --help and the template test),
// with the parametrised forms written as "component.<name>" and "reason.<name>".
const std::vector<std::string>& KnownKeys();

// True when `key` is one VmValue understands (checked before any I/O).
bool IsKnownKey(std::string_view key);

// The value of `key` for `vm` (an element of doc["vms"]); `doc` is the whole
// document (for keys relative to generated_at_unix).
struct Lookup {
  std::string value;
  bool ok = false;
  LookupFailure failure{LookupError::kUnknownKey, ""};
};
Lookup VmValue(const nlohmann::json& doc, const nlohmann::json& vm, std::string_view key);

// Formats a double the way Zabbix parses it: shortest round-trip text, no
// exponent for ordinary magnitudes ("0.000123", "-600", "97.4").
std::string FormatNumber(double v);

}  // namespace vmtime::zabbix
