// The collector table: every collector the exporter knows, with its flag
// help, a factory and the config fingerprint that decides whether a reload
// must recreate it. Built explicitly (no static registration); main and the
// flag parser both read it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "exporter/collectors/collector.h"
#include "exporter/config/config.h"

namespace vmtime {

struct CollectorSpec {
  std::string name;
  std::string help;
  std::function<std::shared_ptr<Collector>(const Config&, const Clock&)> make;
  std::function<std::string(const Config&)> fingerprint;
};

const std::vector<CollectorSpec>& CollectorTable();

}  // namespace vmtime
