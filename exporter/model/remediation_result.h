// RemediationResult: how one remediation attempt ended (issue 15 item 3).
// The remediation engine produces them, the store counts them per VM and
// exposition renders `vmtime_vm_remediations_total{result}`; docs/metrics.md
// and docs/remediation.md define each name.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace vmtime {

enum class RemediationResult {
  kOk = 0,           // guest clock set and the re-measured offset within the bound
  kNotCorrected,     // set succeeded, but the re-measured offset is still beyond the bound
  kFailed,           // virDomainSetTime or the re-measure failed or exceeded its deadline
  kDryRun,           // remediation.dry_run: logged and audited, nothing changed
  kRefusedBackward,  // the correction would step the guest back more than max_backward_step
};
inline constexpr size_t kRemediationResultCount = 5;

constexpr const char* RemediationResultName(RemediationResult r) {
  switch (r) {
    case RemediationResult::kOk:
      return "ok";
    case RemediationResult::kNotCorrected:
      return "not_corrected";
    case RemediationResult::kFailed:
      return "failed";
    case RemediationResult::kDryRun:
      return "dry_run";
    case RemediationResult::kRefusedBackward:
      return "refused_backward";
  }
  return "unknown";
}

// Attempts per result, indexed by static_cast<size_t>(RemediationResult).
using RemediationCounts = std::array<uint64_t, kRemediationResultCount>;

}  // namespace vmtime
