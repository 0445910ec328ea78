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
// incrementally to keep monotonic step counters). docs/scoring.md has the
// definitions and the reasons for them.
enum class StepDirection { kNone, kForward, kBackward };
// Compares two consecutive samples: a step is a change of (guest clock - host
// monotonic) beyond +-params.step_threshold_s after removing what
// `drift_ratio` (d offset / d host time) explains over the pair. Stopped
// pairs (StoppedBetween), duplicates and out-of-order pairs are kNone.
StepDirection StepBetween(const ClockSample& prev, const ClockSample& cur, double drift_ratio,
                          const Params& params);
// True when host monotonic time advanced and the guest clock advanced by at
// least 0 but less than params.stopped_ratio of it (a guest clock that went
// backwards is a step, not a stop).
bool StoppedBetween(const ClockSample& prev, const ClockSample& cur, const Params& params);
// Least-squares slope of offset_s over host monotonic time (ratio, 1e-6 =
// 1 ppm), with its standard error, over ALL the samples given (Score passes
// the drift window). Step-robust: the history is cut at stops and jumps
// beyond params.step_threshold_s, and one common slope is fitted with one
// intercept per segment. nullopt with fewer than params.drift_min_samples
// usable samples or no time spread.
std::optional<DriftEstimate> EstimateDrift(std::span<const ClockSample> samples,
                                           const Params& params);

}  // namespace vmtime::scoring
