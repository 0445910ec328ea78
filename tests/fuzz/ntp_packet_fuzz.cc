// libFuzzer target: the SNTP reply parser over arbitrary bytes, with the
// expected origin taken from the input so matching origins are reachable.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "exporter/collectors/ntp/ntp_packet.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint64_t origin = 0;
  if (size >= 8) std::memcpy(&origin, data, 8);
  std::span<const uint8_t> packet(data + (size >= 8 ? 8 : 0), size - (size >= 8 ? 8 : 0));
  auto r = vmtime::ntp::ParseNtpPacket(packet, origin);
  if (r.ok()) {
    if (r->stratum < 0 || r->stratum > 255) std::abort();
  } else if (r.error().message.empty()) {
    std::abort();
  }
  return 0;
}
