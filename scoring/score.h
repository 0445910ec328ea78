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

// The offset component for |offset| `abs_offset_s`: piecewise linear through
// the knots (offset_full_s, 1), (offset_warning_s, offset_warning_value),
// (offset_critical_s, offset_critical_value), (offset_zero_s, 0);
// non-increasing; NaN scores 0. Validate uses it for explain_min_points.
double OffsetComponent(double abs_offset_s, const Params& params);

// Detectors, usable on their own (the exporter's store uses StepBetween
// incrementally to keep monotonic step counters). docs/scoring.md has the
// definitions and the reasons for them. A pair whose later sample has
// after_interruption (pause, save/restore, migration in between) is neither
// a stop nor a step for any of them, and starts a new drift segment.
enum class StepDirection { kNone, kForward, kBackward };
// Compares two consecutive samples: a step is a change of (guest clock - host
// monotonic) beyond +-params.step_threshold_s after removing what
// `drift_ratio` (d offset / d host time) explains over the pair. Stopped
// pairs (StoppedBetween), interrupted pairs, duplicates and out-of-order
// pairs are kNone.
StepDirection StepBetween(const ClockSample& prev, const ClockSample& cur, double drift_ratio,
                          const Params& params);
// True when host monotonic time advanced and the guest clock moved, in
// either direction, by less than params.stopped_ratio of it:
// |guest elapsed| < stopped_ratio x host elapsed. A clock that something
// keeps resetting to the same value moves back and forth by fractions of a
// second between samples: that is a stop, not a string of backward steps.
// False for an interrupted pair (cur.after_interruption).
bool StoppedBetween(const ClockSample& prev, const ClockSample& cur, const Params& params);
// Least-squares slope of offset_s over host monotonic time (ratio, 1e-6 =
// 1 ppm), with its standard error, over ALL the samples given (Score passes
// the drift window). Step-robust: the history is cut at stops, interruptions
// and jumps beyond params.step_threshold_s, and one common slope is fitted
// with one intercept per segment. nullopt with fewer than
// params.drift_min_samples usable samples or no time spread.
std::optional<DriftEstimate> EstimateDrift(std::span<const ClockSample> samples,
                                           const Params& params);

}  // namespace vmtime::scoring
