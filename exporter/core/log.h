// Logging setup: spdlog with a level and a format ("logfmt" or "json"),
// after the Prometheus exporters' --log.level / --log.format convention.
#pragma once

#include <string>

#include "exporter/core/result.h"

namespace vmtime {

// level: debug, info, warn, error. format: logfmt, json. Logs go to stderr.
Status SetupLogging(const std::string& level, const std::string& format);

}  // namespace vmtime
