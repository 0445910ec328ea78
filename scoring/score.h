// The scoring engine: VmInput + Params in, ScoreResult out.
// Pure and deterministic: no I/O, no globals, no clock reads.
// The model is documented in docs/scoring.md.
#pragma once

#include <optional>
#include <span>

#include "scoring/params.h"
#include "scoring/types.h"

namespace vmtime::scoring {

ScoreResult Score(const VmInput& input, const Params& params);

// Detectors, usable on their own (the exporter's store uses StepBetween
// incrementally to keep monotonic step counters).
enum class StepDirection { kNone, kForward, kBackward };
// Compares two consecutive samples; `drift_ratio` explains part of the change.
StepDirection StepBetween(const ClockSample& prev, const ClockSample& cur, double drift_ratio,
                          const Params& params);
// True when guest elapsed / host elapsed between the samples is below params.stopped_ratio.
bool StoppedBetween(const ClockSample& prev, const ClockSample& cur, const Params& params);
// Least-squares slope of offset over host monotonic time, with standard error.
std::optional<DriftEstimate> EstimateDrift(std::span<const ClockSample> samples,
                                           const Params& params);

}  // namespace vmtime::scoring
