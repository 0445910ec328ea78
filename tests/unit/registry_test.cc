// The factory registry against the collector table: the same collectors, in
// the same order, and each factory builds the collector its row names.
#include "exporter/collectors/registry.h"

#include <gtest/gtest.h>

#include "exporter/core/clock.h"

namespace vmtime {
namespace {

TEST(Registry, ListsTheCollectorsOfTheTable) {
  const auto table = CollectorTable();
  const auto factories = CollectorFactories();
  ASSERT_EQ(factories.size(), table.size());
  for (size_t i = 0; i < table.size(); ++i) {
    EXPECT_EQ(factories[i].id, table[i].id) << "row " << i << " (" << table[i].name << ")";
    EXPECT_NE(factories[i].make, nullptr) << table[i].name;
  }
}

TEST(Registry, EachFactoryBuildsTheCollectorItsRowNames) {
  Config config;
  for (auto& [id, cc] : config.collectors) cc.enabled = true;  // guest_status builds only if on
  config.libvirt.uri = "test:///default";  // collectors connect lazily: no I/O here
  config.chrony.address = "127.0.0.1:1";
  FakeClock clock;
  for (const auto& def : CollectorTable()) {
    auto collector = MakeCollector(def.id, config, clock);
    ASSERT_NE(collector, nullptr) << def.name;
    EXPECT_EQ(collector->Name(), def.name);
  }
}

}  // namespace
}  // namespace vmtime
