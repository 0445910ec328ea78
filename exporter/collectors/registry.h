// The factory registry: how to build each collector of the collector table
// (config/collector_table.h), one entry per row, in the table's order (a
// test checks both list the same collectors). Built explicitly, no static
// registration. Whether a reload may keep a running instance is decided by
// CollectorSettingsEqual (config.h) from the table, not here.
#pragma once

#include <memory>
#include <span>

#include "exporter/collectors/collector.h"
#include "exporter/config/config.h"

namespace vmtime {

struct CollectorFactory {
  CollectorId id;
  // Builds the collector from the configuration; `clock` outlives it.
  std::shared_ptr<Collector> (*make)(const Config& config, const Clock& clock);
};

std::span<const CollectorFactory> CollectorFactories();
// The collector for `id`, built from `config`.
std::shared_ptr<Collector> MakeCollector(CollectorId id, const Config& config, const Clock& clock);

}  // namespace vmtime
