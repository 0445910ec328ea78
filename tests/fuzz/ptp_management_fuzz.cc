// libFuzzer target: ptp4l management replies (collectors/ptp/ptp_management.h)
// over arbitrary bytes. The first two input bytes pick the expected sequence
// id and the third the management id asked for, so matching replies are
// reachable; every parsed reply then goes through every data-set decoder.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "exporter/collectors/ptp/ptp_management.h"

namespace {

constexpr uint16_t kIds[] = {
    vmtime::ptp::kIdDefaultDataSet, vmtime::ptp::kIdCurrentDataSet,
    vmtime::ptp::kIdParentDataSet,  vmtime::ptp::kIdTimePropertiesDataSet,
    vmtime::ptp::kIdPortDataSet,    vmtime::ptp::kIdTimeStatusNp,
};

void MustName(const vmtime::Status& s) {
  if (!s.ok() && s.message().empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const auto sequence = static_cast<uint16_t>((data[0] << 8) | data[1]);
  const uint16_t id = kIds[data[2] % (sizeof kIds / sizeof kIds[0])];
  const std::span<const uint8_t> message(data + 3, size - 3);
  (void)vmtime::ptp::MessageSequence(message);
  auto r = vmtime::ptp::ParseResponse(message, sequence, id);
  if (!r.ok()) {
    if (r.error().message.empty()) std::abort();
    return 0;
  }
  if (r->management_id != id || r->sequence != sequence || r->data.size() > message.size()) {
    std::abort();
  }
  vmtime::PtpObservation o;
  MustName(vmtime::ptp::DecodeDefaultDataSet(r->data, o));
  MustName(vmtime::ptp::DecodeCurrentDataSet(r->data, o));
  MustName(vmtime::ptp::DecodeParentDataSet(r->data, o));
  MustName(vmtime::ptp::DecodeTimePropertiesDataSet(r->data, o));
  MustName(vmtime::ptp::DecodeTimeStatusNp(r->data, o));
  auto port = vmtime::ptp::DecodePortDataSet(r->data);
  if (!port.ok() && port.error().message.empty()) std::abort();
  return 0;
}
