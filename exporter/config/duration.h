// Durations in configuration: "250ms", "15s", "2m", "1h", "1m30s", or a bare
// number of seconds ("0.5"). Negative durations are rejected.
#pragma once

#include <string>
#include <string_view>

#include "exporter/core/result.h"

namespace vmtime {

Result<double> ParseDurationSeconds(std::string_view text);
// Formats seconds the way ParseDurationSeconds reads them back ("15s", "250ms").
std::string FormatDuration(double seconds);

}  // namespace vmtime
