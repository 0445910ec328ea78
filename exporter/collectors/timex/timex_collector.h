// timex: the host kernel's view of its clock discipline, read with
// adjtimex(2) in read-only mode (modes = 0). Units are converted here, once:
// the STA_NANO status bit decides whether `offset` is in ns or us, `freq`
// and `ppsfreq` are 2^-16 ppm and become ratios.
#pragma once

#include <sys/timex.h>

#include <functional>
#include <string_view>

#include "exporter/collectors/collector.h"

namespace vmtime {

// Pure conversion of a raw adjtimex result (`state` is its return value).
TimexObservation ConvertTimex(const struct timex& tx, int state, int64_t measured_real_ns);

class TimexCollector final : public Collector {
 public:
  using Syscall = std::function<int(struct timex*)>;
  // `syscall` defaults to ::adjtimex; tests pass a fake.
  explicit TimexCollector(Syscall syscall = nullptr);
  std::string_view Name() const override { return "timex"; }
  Status Collect(const CollectContext& ctx, Observations& out) override;

 private:
  Syscall syscall_;
};

}  // namespace vmtime
