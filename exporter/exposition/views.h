// Non-Prometheus views of a Snapshot: the JSON API (docs/api.md) here, the
// HTML status page in status_page.h (included for its callers). Pure
// functions; they do not throw on any snapshot.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "exporter/exposition/status_page.h"
#include "exporter/model/snapshot.h"

namespace vmtime::exposition {

nlohmann::json RenderJson(const Snapshot& s);

}  // namespace vmtime::exposition
