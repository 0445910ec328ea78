// Guest status error metric (see guest_status_metrics.h).
#include "exporter/exposition/guest_status_metrics.h"

#include <string>

#include "exporter/model/guest_status_error.h"

namespace vmtime::exposition {

Family DeclareGuestStatusMetrics(FamilyBuilder& out) {
  return out.Gauge("vmtime_vm_guest_status_error",
                   "1 while reading the guest's time daemon fails, by kind: exec_failed, "
                   "parse_failed, timeout, no_daemon.");
}

void AppendGuestStatusMetrics(const VmView& vm, const Labels& vm_labels, const Family& error) {
  if (!vm.guest) return;
  auto kind = guest_status::GuestStatusErrorOf(vm.guest->error);
  if (kind == guest_status::GuestStatusError::kNone) return;
  Labels l = vm_labels;
  l.emplace_back("error", std::string(guest_status::GuestStatusErrorName(kind)));
  error.Add(l, 1);
}

}  // namespace vmtime::exposition
