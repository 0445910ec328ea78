// The scoring engine (docs/scoring.md is the prose version of this file).
//
// Detectors run over the VM's sample history (oldest first): stop and step
// detection between consecutive samples, a step-robust least-squares drift
// estimate over the drift window, and the age of the newest sample. Seven
// components in [0, 1] follow from them and from the optional guest and host
// sync status; their weighted mean times 100 is then capped by the gates.
//
// Units and signs: offsets are guest clock minus reference clock in seconds
// (positive = guest ahead); drift is d(offset)/d(host monotonic time), a
// dimensionless ratio (1e-6 = 1 ppm). Every time difference is taken in
// integer nanoseconds first, so the result depends only on differences of
// the input timestamps, never on their origin.
//
// The hot path allocates nothing except the reasons vector, and that only
// when a reason is active.
#include "scoring/score.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace vmtime::scoring {

namespace {

constexpr double kNsToS = 1e-9;

double Clamp01(double v) { return v > 0 ? (v < 1 ? v : 1) : 0; }  // NaN -> 0

// 1 at or below `full`, 0 at or above `zero`, linear in between (full < zero).
// NaN scores 0.
double Ramp(double x, double full, double zero) {
  if (x <= full) return 1;
  if (x < zero) return (zero - x) / (zero - full);
  return 0;
}

// Linear interpolation between (x0, y0) and (x1, y1) at x, x0 < x <= x1.
double Lerp(double x, double x0, double y0, double x1, double y1) {
  return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
}

// Offset component: piecewise linear in |offset| through the four knots.
// Non-increasing because Validate requires increasing knots and
// non-increasing values.
double OffsetComponent(double abs_offset_s, const Params& p) {
  if (abs_offset_s <= p.offset_full_s) return 1;
  if (abs_offset_s <= p.offset_warning_s) {
    return Lerp(abs_offset_s, p.offset_full_s, 1, p.offset_warning_s, p.offset_warning_value);
  }
  if (abs_offset_s <= p.offset_critical_s) {
    return Lerp(abs_offset_s, p.offset_warning_s, p.offset_warning_value, p.offset_critical_s,
                p.offset_critical_value);
  }
  if (abs_offset_s < p.offset_zero_s) {
    return Lerp(abs_offset_s, p.offset_critical_s, p.offset_critical_value, p.offset_zero_s, 0);
  }
  return 0;  // also NaN
}

// Stratum component: 1 up to `full`, linear to 0 at `zero`.
double StratumComponent(int stratum, int full, int zero) {
  if (stratum <= full) return 1;
  if (stratum >= zero) return 0;
  return static_cast<double>(zero - stratum) / static_cast<double>(zero - full);
}

// a - b, saturating instead of overflowing.
int64_t SaturatingSub(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_sub_overflow(a, b, &r)) {
    return b < 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
  }
  return r;
}

// Seconds to nanoseconds for a window length, saturating (windows are > 0).
int64_t WindowNs(double seconds) {
  const double ns = seconds * 1e9;
  if (!(ns < 9.0e18)) return std::numeric_limits<int64_t>::max();
  if (!(ns > 0)) return 0;
  return static_cast<int64_t>(ns);
}

// Elapsed times between two samples, in seconds (from integer ns deltas).
struct Elapsed {
  double host_s;   // host monotonic
  double guest_s;  // guest clock
};
Elapsed ElapsedBetween(const ClockSample& prev, const ClockSample& cur) {
  return {static_cast<double>(SaturatingSub(cur.host_mono_ns, prev.host_mono_ns)) * kNsToS,
          static_cast<double>(SaturatingSub(cur.guest_real_ns, prev.guest_real_ns)) * kNsToS};
}

bool StoppedElapsed(const Elapsed& e, double stopped_ratio) {
  // A guest clock that went backwards is a step, not a stop.
  return e.host_s > 0 && e.guest_s >= 0 && e.guest_s < stopped_ratio * e.host_s;
}

// What the detectors need from one pair of consecutive samples, computed once.
struct PairDelta {
  double host_s;   // host monotonic elapsed
  double guest_s;  // guest clock elapsed
  bool stopped;    // StoppedElapsed
  bool breaks;     // BreaksSegment: the drift fit starts a new segment here
};

// True when the offset change between two samples cannot belong to one
// continuous, steadily drifting clock: a stop, disorder, or a jump of the
// guest clock against host monotonic time (immune to host realtime steps) or
// of the recorded offset (guest - host realtime).
// Fills `d` field by field (building a temporary and copying it made the
// compiler merge the two bool stores into a wider load: a store-forwarding
// stall that cost more than the arithmetic, see bench/scoring_bench.cc).
inline void FillDelta(const ClockSample& prev, const ClockSample& cur, const Params& p,
                      PairDelta& d) {
  const Elapsed e = ElapsedBetween(prev, cur);
  const bool stopped = StoppedElapsed(e, p.stopped_ratio);
  d.host_s = e.host_s;
  d.guest_s = e.guest_s;
  d.stopped = stopped;
  d.breaks = !(e.host_s > 0) || stopped || std::fabs(e.guest_s - e.host_s) > p.step_threshold_s ||
             !(std::fabs(cur.offset_s - prev.offset_s) <= p.step_threshold_s);
}

PairDelta DeltaBetween(const ClockSample& prev, const ClockSample& cur, const Params& p) {
  PairDelta d;
  FillDelta(prev, cur, p, d);
  return d;
}

// Step classification of one pair (see StepBetween).
StepDirection StepOf(const PairDelta& d, double drift_ratio, double threshold_s) {
  if (!(d.host_s > 0) || d.stopped) return StepDirection::kNone;
  const double residual_s = (d.guest_s - d.host_s) - drift_ratio * d.host_s;
  if (residual_s > threshold_s) return StepDirection::kForward;
  if (residual_s < -threshold_s) return StepDirection::kBackward;
  return StepDirection::kNone;
}

// Running least-squares sums of one segment, relative to its first sample.
struct Segment {
  int64_t origin_mono_ns = 0;
  double origin_offset_s = 0;
  int n = 0;
  double sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0;

  void Start(const ClockSample& s) {
    *this = Segment{};
    origin_mono_ns = s.host_mono_ns;
    origin_offset_s = s.offset_s;
    n = 1;  // (0, 0) adds nothing to the sums
  }
  void Add(const ClockSample& s) {
    const double x = static_cast<double>(SaturatingSub(s.host_mono_ns, origin_mono_ns)) * kNsToS;
    const double y = s.offset_s - origin_offset_s;
    ++n;
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
    syy += y * y;
  }
};

// Pooled ("within-segment") sums: one common slope, one intercept per segment.
struct Pooled {
  double sxx = 0, sxy = 0, syy = 0;
  int samples = 0;
  int segments = 0;

  void Fold(const Segment& s) {
    if (s.n < 2) return;
    const double n = s.n;
    sxx += s.sxx - s.sx * s.sx / n;
    sxy += s.sxy - s.sx * s.sy / n;
    syy += s.syy - s.sy * s.sy / n;
    samples += s.n;
    ++segments;
  }
};

// Fixed-effects least squares over step-free segments. When `deltas` is not
// null it receives the samples.size() - 1 pair deltas (deltas[i] is between
// samples[i] and samples[i + 1]) so the caller need not compute them again.
std::optional<DriftEstimate> FitDrift(std::span<const ClockSample> samples, const Params& params,
                                      PairDelta* deltas) {
  const size_t min_samples = static_cast<size_t>(std::max(params.drift_min_samples, 3));
  Pooled pooled;
  Segment seg;
  if (!samples.empty()) seg.Start(samples[0]);
  for (size_t i = 1; i < samples.size(); ++i) {
    PairDelta scratch;
    PairDelta& d = deltas != nullptr ? deltas[i - 1] : scratch;
    FillDelta(samples[i - 1], samples[i], params, d);
    if (d.breaks) {
      pooled.Fold(seg);
      seg.Start(samples[i]);
    } else {
      seg.Add(samples[i]);
    }
  }
  pooled.Fold(seg);
  if (samples.size() < min_samples || pooled.samples < static_cast<int>(min_samples) ||
      !(pooled.sxx > 0)) {
    return std::nullopt;
  }
  // Degrees of freedom: one slope plus one intercept per segment.
  const int dof = pooled.samples - pooled.segments - 1;
  if (dof < 1) return std::nullopt;
  DriftEstimate d;
  d.ratio = pooled.sxy / pooled.sxx;
  const double ssr = std::max(0.0, pooled.syy - d.ratio * pooled.sxy);
  d.standard_error = std::sqrt(ssr / dof / pooled.sxx);
  d.samples = pooled.samples;
  if (!std::isfinite(d.ratio) || !std::isfinite(d.standard_error)) return std::nullopt;
  return d;
}

// Pair deltas of a window this long are kept on the stack; longer windows
// (a large history_samples) compute them twice instead.
constexpr size_t kMaxStackPairs = 256;

}  // namespace

bool StoppedBetween(const ClockSample& prev, const ClockSample& cur, const Params& params) {
  return StoppedElapsed(ElapsedBetween(prev, cur), params.stopped_ratio);
}

StepDirection StepBetween(const ClockSample& prev, const ClockSample& cur, double drift_ratio,
                          const Params& params) {
  if (!std::isfinite(drift_ratio)) drift_ratio = 0;
  // Change of (guest clock - host monotonic) not explained by the drift;
  // stops, duplicates and disorder are not steps.
  return StepOf(DeltaBetween(prev, cur, params), drift_ratio, params.step_threshold_s);
}

std::optional<DriftEstimate> EstimateDrift(std::span<const ClockSample> samples,
                                           const Params& params) {
  return FitDrift(samples, params, nullptr);
}

ScoreResult Score(const VmInput& in, const Params& p) {
  ScoreResult r;
  uint32_t reasons = 0;
  auto set = [&reasons](Reason x) { reasons |= 1u << static_cast<int>(x); };
  double cap = 100;

  const std::span<const ClockSample> all = in.samples;
  const bool have = !all.empty();
  auto& c = r.components;

  // Freshness: age of the newest sample in poll intervals.
  const double fresh_full_s = p.freshness_full_intervals * in.poll_interval_s;
  const double fresh_zero_s = p.freshness_zero_intervals * in.poll_interval_s;
  bool fresh = false;
  if (have) {
    const double age_s = std::max(
        0.0, static_cast<double>(SaturatingSub(in.now_mono_ns, all.back().host_mono_ns)) * kNsToS);
    r.freshness_age_s = age_s;
    c[static_cast<int>(Component::kFreshness)] = Ramp(age_s, fresh_full_s, fresh_zero_s);
    fresh = age_s <= fresh_full_s;
    if (!fresh) set(Reason::kStale);
  } else {
    r.freshness_age_s = std::numeric_limits<double>::infinity();
    c[static_cast<int>(Component::kFreshness)] = 0;
    set(Reason::kNoData);
  }

  // Agent reachability: a reason whenever the last attempt failed; a gate
  // only when there is no fresh sample to score instead.
  if (in.agent_attempted && !in.agent_reachable) {
    set(Reason::kAgentUnreachable);
    if (!fresh) cap = std::min(cap, p.gate_agent_unreachable_max);
  }

  // Offset: the newest sample, against UTC when the host's offset is known.
  if (have) {
    double offset_s = all.back().offset_s;
    if (in.host && in.host->offset_s) offset_s += *in.host->offset_s;
    r.offset_used_s = offset_s;
    const double abs_s =
        std::isfinite(offset_s) ? std::fabs(offset_s) : std::numeric_limits<double>::infinity();
    c[static_cast<int>(Component::kOffset)] = OffsetComponent(abs_s, p);
    if (abs_s > p.offset_warning_s) set(Reason::kOffsetHigh);
    if (abs_s > p.offset_critical_s) {
      set(Reason::kOffsetCritical);
      cap = std::min(cap, p.gate_offset_critical_max);
    }
  } else {
    c[static_cast<int>(Component::kOffset)] = 0;
  }

  // The drift window: the suffix of samples taken at or after now - window
  // (samples are oldest first, host monotonic increasing, as the store
  // keeps them). Usually the whole history: one comparison, no search.
  const int64_t cutoff_ns = SaturatingSub(in.now_mono_ns, WindowNs(p.drift_window_s));
  size_t first = 0;
  if (have && all.front().host_mono_ns < cutoff_ns) {
    first = static_cast<size_t>(std::partition_point(all.begin(), all.end(),
                                                     [cutoff_ns](const ClockSample& s) {
                                                       return s.host_mono_ns < cutoff_ns;
                                                     }) -
                                all.begin());
  }
  const std::span<const ClockSample> window = all.subspan(first);

  // Drift: step-robust slope; scored on |slope| less its uncertainty.
  std::array<PairDelta, kMaxStackPairs> stack_deltas;
  const bool keep_deltas = window.size() >= 2 && window.size() - 1 <= kMaxStackPairs;
  r.drift = FitDrift(window, p, keep_deltas ? stack_deltas.data() : nullptr);
  if (r.drift) {
    const double scored = std::max(
        0.0, std::fabs(r.drift->ratio) - p.drift_confidence_sigmas * r.drift->standard_error);
    c[static_cast<int>(Component::kDrift)] = Ramp(scored, p.drift_full_ratio, p.drift_zero_ratio);
    if (scored > p.drift_full_ratio) set(Reason::kDriftHigh);
  } else {
    // Too few samples to tell: no evidence of drift, unless there is no data.
    c[static_cast<int>(Component::kDrift)] = have ? 1 : 0;
  }

  // Stability: steps and stops between consecutive samples in the window.
  const double drift_ratio = r.drift ? r.drift->ratio : 0;
  int stops = 0;
  for (size_t i = 1; i < window.size(); ++i) {
    const PairDelta d =
        keep_deltas ? stack_deltas[i - 1] : DeltaBetween(window[i - 1], window[i], p);
    if (d.stopped) {
      ++stops;
      continue;
    }
    switch (StepOf(d, drift_ratio, p.step_threshold_s)) {
      case StepDirection::kForward:
        ++r.steps_in_window.forward;
        break;
      case StepDirection::kBackward:
        ++r.steps_in_window.backward;
        break;
      case StepDirection::kNone:
        break;
    }
  }
  if (r.steps_in_window.forward > 0) set(Reason::kStepForward);
  if (r.steps_in_window.backward > 0) set(Reason::kStepBackward);
  const double events = r.steps_in_window.forward + stops +
                        p.stability_backward_step_events * r.steps_in_window.backward;
  c[static_cast<int>(Component::kStability)] =
      have ? Clamp01(1 - events / static_cast<double>(std::max(1, p.stability_zero_events))) : 0;

  // Clock stopped now: the last two samples of a running domain.
  if (in.running && all.size() >= 2 && StoppedBetween(all[all.size() - 2], all.back(), p)) {
    r.clock_stopped = true;
    set(Reason::kClockStopped);
    cap = std::min(cap, p.gate_clock_stopped_max);
  }

  // Guest sync state and stratum (optional). Unknown state scores
  // sync_unknown_value; an unknown stratum is neutral (the missing guest
  // status is already priced in by the sync state component).
  double sync = p.sync_unknown_value;
  double stratum = 1;
  if (in.guest) {
    const GuestSyncStatus& g = *in.guest;
    const bool stratum_unsynced = g.stratum && (*g.stratum <= 0 || *g.stratum >= 16);
    if (g.state == SyncState::kUnsynchronised || g.leap == LeapStatus::kUnsynchronised ||
        stratum_unsynced) {
      sync = 0;
      stratum = 0;  // an unsynchronised daemon's stratum is 16 by definition
      set(Reason::kUnsynchronised);
    } else {
      if (g.state == SyncState::kSynchronised) sync = 1;
      if (g.stratum) {
        stratum = StratumComponent(*g.stratum, p.stratum_full, p.stratum_zero);
        if (*g.stratum > p.stratum_full) set(Reason::kStratumHigh);
      }
    }
    if (g.leap == LeapStatus::kInsertSecond || g.leap == LeapStatus::kDeleteSecond) {
      set(Reason::kLeapPending);  // informational: no penalty
    }
  }
  c[static_cast<int>(Component::kSyncState)] = sync;
  c[static_cast<int>(Component::kStratum)] = stratum;

  // Host reference (optional): unknown scores sync_unknown_value.
  double host = p.sync_unknown_value;
  if (in.host && in.host->state != SyncState::kUnknown) {
    const HostReference& h = *in.host;
    const bool stratum_unsynced =
        h.stratum && (*h.stratum <= 0 || *h.stratum >= std::min(16, p.stratum_zero));
    if (h.state == SyncState::kUnsynchronised || stratum_unsynced) {
      host = 0;
      set(Reason::kHostUnsynchronised);
    } else {
      host = h.stratum ? StratumComponent(*h.stratum, p.host_stratum_full, p.stratum_zero) : 1;
    }
  }
  c[static_cast<int>(Component::kHostReference)] = host;

  // Weighted mean, then the gates.
  const double weights[kComponentCount] = {
      p.weight_offset,    p.weight_sync_state, p.weight_stratum,        p.weight_drift,
      p.weight_stability, p.weight_freshness,  p.weight_host_reference,
  };
  double sum_w = 0;
  double sum = 0;
  for (int i = 0; i < kComponentCount; ++i) {
    c[i] = Clamp01(c[i]);
    sum_w += weights[i];
    sum += weights[i] * c[i];
  }
  double score = sum_w > 0 ? 100 * sum / sum_w : 0;
  score = std::min(score, cap);
  r.score = std::isfinite(score) ? std::clamp(score, 0.0, 100.0) : 0;
  r.band = r.score >= p.band_good_min       ? Band::kGood
           : r.score >= p.band_degraded_min ? Band::kDegraded
                                            : Band::kBad;

  if (reasons != 0) {
    r.reasons.reserve(static_cast<size_t>(std::popcount(reasons)));
    for (int i = 0; i < kReasonCount; ++i) {
      if (reasons & (1u << i)) r.reasons.push_back(static_cast<Reason>(i));
    }
  }
  return r;
}

}  // namespace vmtime::scoring
