#include "exporter/config/duration.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace vmtime {

Result<double> ParseDurationSeconds(std::string_view text) {
  const std::string quoted = "'" + std::string(text) + "'";
  if (text.empty()) return Error{"empty duration"};
  // A bare number means seconds.
  {
    double v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc() && ptr == text.data() + text.size()) {
      if (!std::isfinite(v) || v < 0) return Error{"duration " + quoted + " must be >= 0"};
      return v;
    }
  }
  double total = 0;
  size_t i = 0;
  bool any = false;
  while (i < text.size()) {
    double v = 0;
    auto [ptr, ec] = std::from_chars(text.data() + i, text.data() + text.size(), v);
    if (ec != std::errc() || v < 0) {
      return Error{"invalid duration " + quoted + " (expected e.g. 500ms, 15s, 2m, 1h)"};
    }
    i = static_cast<size_t>(ptr - text.data());
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    double scale = 0;
    if (unit == "ns") {
      scale = 1e-9;
    } else if (unit == "us") {
      scale = 1e-6;
    } else if (unit == "ms") {
      scale = 1e-3;
    } else if (unit == "s") {
      scale = 1;
    } else if (unit == "m") {
      scale = 60;
    } else if (unit == "h") {
      scale = 3600;
    } else if (unit == "d") {
      scale = 86400;
    } else {
      return Error{"invalid duration " + quoted + ": unknown unit '" + std::string(unit) +
                   "' (ns, us, ms, s, m, h, d)"};
    }
    total += v * scale;
    any = true;
  }
  if (!any || !std::isfinite(total)) return Error{"invalid duration " + quoted};
  return total;
}

std::string FormatDuration(double seconds) {
  char buf[64];
  if (seconds != 0 && seconds < 1) {
    std::snprintf(buf, sizeof(buf), "%gms", seconds * 1e3);
  } else {
    std::snprintf(buf, sizeof(buf), "%gs", seconds);
  }
  return buf;
}

}  // namespace vmtime
