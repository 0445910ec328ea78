#include "exporter/collectors/timex/timex_collector.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace vmtime {
namespace {
constexpr double kScaledPpm = 65536.0;     // freq units per ppm
constexpr long kKvmArtifactNs = 1L << 32;  // offset KVM hosts sometimes report
}  // namespace

TimexObservation ConvertTimex(const struct timex& tx, int state, int64_t measured_real_ns) {
  TimexObservation o;
  o.measured_real_ns = measured_real_ns;
  const bool nano = (tx.status & STA_NANO) != 0;
  o.offset_s = static_cast<double>(tx.offset) * (nano ? 1e-9 : 1e-6);
  o.kvm_offset_artifact = nano && tx.offset == kKvmArtifactNs;
  o.frequency_ratio = static_cast<double>(tx.freq) / kScaledPpm * 1e-6;
  o.max_error_s = static_cast<double>(tx.maxerror) * 1e-6;
  o.est_error_s = static_cast<double>(tx.esterror) * 1e-6;
  o.status = tx.status;
  o.state = state;
  o.synchronised = state != TIME_ERROR && (tx.status & STA_UNSYNC) == 0;
  o.tick_s = static_cast<double>(tx.tick) * 1e-6;
  o.tai_offset_s = tx.tai;
  o.time_constant = static_cast<double>(tx.constant);
  o.pps_frequency_ratio = static_cast<double>(tx.ppsfreq) / kScaledPpm * 1e-6;
  return o;
}

TimexCollector::TimexCollector(Syscall syscall) : syscall_(std::move(syscall)) {
  if (!syscall_) syscall_ = [](struct timex* tx) { return ::adjtimex(tx); };
}

Status TimexCollector::Collect(const CollectContext& ctx, Observations& out) {
  struct timex tx {};
  tx.modes = 0;  // read only
  const int state = syscall_(&tx);
  if (state < 0) {
    const int err = errno;
    return Error{std::string("adjtimex: ") + std::strerror(err)};
  }
  out.timex = ConvertTimex(tx, state, ctx.clock.RealtimeNs());
  return Status::Ok();
}

}  // namespace vmtime
