// libFuzzer target: timedatectl show output parser (ParseTimedatectlShow). Any bytes must yield
// either a well-formed observation or an error naming the command; never a crash, hang or sanitizer
// report.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "exporter/collectors/guest_status/parsers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto r = vmtime::guest_status::ParseTimedatectlShow(in);
  if (r.ok()) {
    const auto& s = r->status;
    if (s.stratum && (*s.stratum < 0 || *s.stratum > 255)) std::abort();
    if (static_cast<int>(s.leap) < 0 || static_cast<int>(s.leap) > 4) std::abort();
    if (r->daemon.empty()) std::abort();
  } else if (!r.error().message.starts_with("timedatectl show: ")) {
    std::abort();  // every error names the command
  }
  return 0;
}
