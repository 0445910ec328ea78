// Dispatch from a guest command id to its parser (see parsers.h).
#include "exporter/collectors/guest_status/parsers.h"

namespace vmtime::guest_status {

Result<GuestStatusObservation> ParseGuestCommandOutput(GuestCommandId id, std::string_view out) {
  switch (id) {
    case GuestCommandId::kChronycTracking:
      return ParseChronycTracking(out);
    case GuestCommandId::kNtpqRv:
      return ParseNtpqRv(out);
    case GuestCommandId::kTimedatectlShow:
      return ParseTimedatectlShow(out);
    case GuestCommandId::kW32tmStatus:
      return ParseW32tmStatus(out);
  }
  return Error{"unknown guest command id"};
}

}  // namespace vmtime::guest_status
