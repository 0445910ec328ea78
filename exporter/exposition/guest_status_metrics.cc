// Guest status error metric (see guest_status_metrics.h).
#include "exporter/exposition/guest_status_metrics.h"

#include <string>

#include "exporter/model/guest_status_error.h"

namespace vmtime::exposition {
namespace {

constexpr const char* kErrorMetric = "vmtime_vm_guest_status_error";
constexpr const char* kErrorHelp =
    "1 while reading the guest's time daemon fails, by kind: exec_failed, parse_failed, "
    "timeout, no_daemon.";

}  // namespace

void DeclareGuestStatusMetrics(FamilyBuilder& out) {
  out.Declare(kErrorMetric, kErrorHelp, prometheus::MetricType::Gauge);
}

void AppendGuestStatusMetrics(const VmView& vm, const Labels& vm_labels, FamilyBuilder& out) {
  if (!vm.guest) return;
  auto kind = guest_status::GuestStatusErrorOf(vm.guest->error);
  if (kind == guest_status::GuestStatusError::kNone) return;
  Labels l = vm_labels;
  l.emplace_back("error", std::string(guest_status::GuestStatusErrorName(kind)));
  out.Gauge(kErrorMetric, kErrorHelp, l, 1);
}

}  // namespace vmtime::exposition
