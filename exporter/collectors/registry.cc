#include "exporter/collectors/registry.h"

#include "exporter/collectors/timex/timex_collector.h"

namespace vmtime {

const std::vector<CollectorSpec>& CollectorTable() {
  static const std::vector<CollectorSpec> kTable = {
      {"timex", "host kernel clock discipline via adjtimex(2)",
       [](const Config&, const Clock&) { return std::make_shared<TimexCollector>(); },
       [](const Config&) { return std::string(); }},
  };
  return kTable;
}

}  // namespace vmtime
