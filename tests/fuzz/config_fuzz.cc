// libFuzzer target: the configuration file parser (config/config.h) over
// arbitrary text. A parse either yields a configuration or an error that
// names where; it never crashes, hangs or throws. Accepted values respect
// the schema's bounds (collector intervals at least 0.1 s).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "exporter/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto r = vmtime::ParseConfig(text, "fuzz.yml");
  if (!r.ok()) {
    // Errors name the source (file:line:column or file).
    if (r.error().message.rfind("fuzz.yml", 0) != 0) std::abort();
    return 0;
  }
  for (const auto& [id, c] : r->collectors) {
    (void)id;
    if (!(c.interval_s >= 0.1)) std::abort();  // also catches NaN
  }
  return 0;
}
