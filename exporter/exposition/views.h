// Non-Prometheus views of a Snapshot: the JSON API (docs/api.md) and the
// HTML status page. Pure functions; they do not throw on any snapshot.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "exporter/model/snapshot.h"

namespace vmtime::exposition {

nlohmann::json RenderJson(const Snapshot& s);
std::string RenderStatusPage(const Snapshot& s, const std::string& telemetry_path);

}  // namespace vmtime::exposition
