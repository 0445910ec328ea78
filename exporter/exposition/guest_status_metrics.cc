// Guest status error metric (see guest_status_metrics.h).
#include "exporter/exposition/guest_status_metrics.h"

#include "exporter/model/guest_status_error.h"

namespace vmtime::exposition {
namespace {

void Emit(const VmView& vm, VmSeriesSink& out) {
  if (!vm.guest) return;
  const auto kind = guest_status::GuestStatusErrorOf(vm.guest->error);
  if (kind == guest_status::GuestStatusError::kNone) return;
  out.Add(vm, "error", guest_status::GuestStatusErrorName(kind), 1);
}

}  // namespace

VmFamily GuestStatusErrorFamily() {
  return {"vmtime_vm_guest_status_error",
          "1 while reading the guest's time daemon fails, by kind: exec_failed, "
          "parse_failed, timeout, no_daemon.",
          prometheus::MetricType::Gauge, Emit};
}

}  // namespace vmtime::exposition
