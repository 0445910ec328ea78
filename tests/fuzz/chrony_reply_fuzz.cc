// libFuzzer target: every chrony reply parser over arbitrary bytes. Each must
// return a value or a named error; never crash, hang or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "exporter/collectors/chrony/chrony_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  using namespace vmtime::chrony;
  auto check = [](const auto& r) {
    if (!r.ok() && r.error().message.empty()) std::abort();  // errors must say something
  };
  check(ParseReplyHeader(in));
  check(ParseTrackingReply(in));
  check(ParseNSourcesReply(in));
  check(ParseSourceDataReply(in));
  check(ParseSourcestatsReply(in));
  check(ParseNtpSourceNameReply(in));
  return 0;
}
