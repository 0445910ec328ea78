// The collector table: every collector the exporter knows, once. Its rows
// drive the configuration defaults (Config::collectors), the accepted
// `collectors.<name>` keys and the `collectors:` part of the built-in
// default YAML, the `--[no-]collector.<name>` flags and their help, and the
// factory registry (collectors/registry.h, one factory per row, checked by
// a test). Collectors are named by CollectorId everywhere in code; the name
// string exists only at the edges (YAML keys, flags, the `collector` label).
#pragma once

#include <array>
#include <map>
#include <optional>
#include <span>
#include <string_view>

namespace vmtime {

enum class CollectorId { kTimex, kLibvirt, kChrony, kNtp, kGuestStatus, kNtpd, kTimesyncd, kPtp };

// Per-collector scheduling, under `collectors.<name>:`.
struct CollectorConfig {
  bool enabled = true;
  double interval_s = 15;
  double timeout_s = 10;       // deadline of one Collect() call
  int max_retries = 2;         // retries within a round after a failure
  double retry_backoff_s = 1;  // first retry delay, doubled per retry

  bool operator==(const CollectorConfig&) const = default;
};

struct CollectorDefinition {
  CollectorId id;
  std::string_view name;     // "timex": YAML key, flag suffix, `collector` label value
  std::string_view help;     // one line, for --help
  CollectorConfig defaults;  // `collectors.<name>` when the configuration says nothing
  // The configuration sections the collector reads besides its schedule
  // ("" for none); a reload rebuilds it when one of them changes.
  std::string_view sections;
};

// Every collector, in the order they are listed (help, YAML, registry).
std::span<const CollectorDefinition> CollectorTable();
const CollectorDefinition& CollectorDefinitionOf(CollectorId id);
std::string_view CollectorName(CollectorId id);
// The id for a name, or nullopt for a name no collector has.
std::optional<CollectorId> CollectorIdFromName(std::string_view name);
// Every collector's defaults, keyed by id (Config::collectors' initial value).
std::map<CollectorId, CollectorConfig> DefaultCollectorConfigs();

}  // namespace vmtime
