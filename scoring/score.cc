// The scoring engine (docs/scoring.md is the prose version of this file).
//
// Detectors run over the VM's sample history (oldest first): stop and step
// detection between consecutive samples, a step-robust least-squares drift
// estimate over the drift window, the lag left by an interruption (pause,
// save/restore, migration) and the age of the newest sample. Seven
// components in [0, 1] follow from them and from the optional guest and host
// sync status; the weighted mean of the components that were measured, times
// 100, is then capped by the gates. Every component that can lose points has
// reasons that name the loss (docs/scoring.md "Explained scores").
//
// Score runs as named steps, each filling its part of the result through a
// Tally (reasons raised, the lowest cap so far): freshness, agent, offset,
// drift and stability over the window, stopped now, resumed behind, guest
// status, host reference, and finally the weighted mean, gates and band.
//
// Units and signs: offsets are guest clock minus reference clock in seconds
// (positive = guest ahead); drift is d(offset)/d(host monotonic time), a
// dimensionless ratio (1e-6 = 1 ppm). Every time difference is taken in
// integer nanoseconds first, so the result depends only on differences of
// the input timestamps, never on their origin.
//
// The hot path allocates nothing (the reasons are a ReasonSet of bits).
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

// |guest elapsed| small against host elapsed, in either direction: a clock
// that does not advance, or one that something keeps resetting to about the
// same value (it then moves back and forth by fractions of a second).
bool StoppedElapsed(const Elapsed& e, double stopped_ratio) {
  return e.host_s > 0 && std::fabs(e.guest_s) < stopped_ratio * e.host_s;
}

// What the detectors need from one pair of consecutive samples, computed once.
struct PairDelta {
  double host_s;     // host monotonic elapsed
  double guest_s;    // guest clock elapsed
  bool interrupted;  // cur.after_interruption: neither a stop nor a step
  bool stopped;      // StoppedElapsed, not interrupted
  bool breaks;       // the drift fit starts a new segment here
};

// A pair breaks the drift segment when its offset change cannot belong to one
// continuous, steadily drifting clock: an interruption, a stop, disorder, or
// a jump of the guest clock against host monotonic time (immune to host
// realtime steps) or of the recorded offset (guest - host realtime).
// Fills `d` field by field (building a temporary and copying it made the
// compiler merge the bool stores into a wider load: a store-forwarding
// stall that cost more than the arithmetic, see bench/scoring_bench.cc).
inline void FillDelta(const ClockSample& prev, const ClockSample& cur, const Params& p,
                      PairDelta& d) {
  const Elapsed e = ElapsedBetween(prev, cur);
  const bool interrupted = cur.after_interruption;
  const bool stopped = !interrupted && StoppedElapsed(e, p.stopped_ratio);
  d.host_s = e.host_s;
  d.guest_s = e.guest_s;
  d.interrupted = interrupted;
  d.stopped = stopped;
  d.breaks = interrupted || !(e.host_s > 0) || stopped ||
             std::fabs(e.guest_s - e.host_s) > p.step_threshold_s ||
             !(std::fabs(cur.offset_s - prev.offset_s) <= p.step_threshold_s);
}

PairDelta DeltaBetween(const ClockSample& prev, const ClockSample& cur, const Params& p) {
  PairDelta d;
  FillDelta(prev, cur, p, d);
  return d;
}

// Step classification of one pair (see StepBetween).
StepDirection StepOf(const PairDelta& d, double drift_ratio, double threshold_s) {
  if (!(d.host_s > 0) || d.stopped || d.interrupted) return StepDirection::kNone;
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
  double suu = 0;  // sum of squared sample uncertainties

  void Start(const ClockSample& s) {
    *this = Segment{};
    origin_mono_ns = s.host_mono_ns;
    origin_offset_s = s.offset_s;
    n = 1;  // (0, 0) adds nothing to the sums
    suu = s.uncertainty_s * s.uncertainty_s;
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
    suu += s.uncertainty_s * s.uncertainty_s;
  }
};

// Pooled ("within-segment") sums: one common slope, one intercept per segment.
struct Pooled {
  double sxx = 0, sxy = 0, syy = 0;
  double suu = 0;
  int samples = 0;
  int segments = 0;

  void Fold(const Segment& s) {
    if (s.n < 2) return;
    const double n = s.n;
    sxx += s.sxx - s.sx * s.sx / n;
    sxy += s.sxy - s.sx * s.sy / n;
    syy += s.syy - s.sy * s.sy / n;
    suu += s.suu;
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
  // The slope is no better known than the samples allow: with each offset
  // uncertain by u (half its bracket round trip), the slope's standard error
  // is at least rms(u) / sqrt(Sxx). A few samples seconds apart with tens of
  // milliseconds of uncertainty (a loaded TCG host, an agent's first answer)
  // fit thousands of ppm by chance, and their residuals alone need not say so.
  const double measurement_se = std::sqrt(pooled.suu / pooled.samples / pooled.sxx);
  d.standard_error = std::max(std::sqrt(ssr / dof / pooled.sxx), measurement_se);
  d.samples = pooled.samples;
  if (!std::isfinite(d.ratio) || !std::isfinite(d.standard_error)) return std::nullopt;
  return d;
}

// Pair deltas of a window this long are kept on the stack; longer windows
// (a large history_samples) compute them twice instead.
constexpr size_t kMaxStackPairs = 256;

// What the steps of Score accumulate: the result being filled, the reasons
// raised (one bit per Reason) and the lowest gate so far.
struct Tally {
  ScoreResult& r;
  uint32_t reasons = 0;
  double cap = 100;

  void Raise(Reason x) { reasons |= 1u << static_cast<int>(x); }
  // Raises `x` and caps the score at `max`: a gate always has its reason.
  void Gate(Reason x, double max) {
    Raise(x);
    cap = std::min(cap, max);
  }
  void Set(Component c, double value) {
    r.components[static_cast<int>(c)] = value;
    r.measured[static_cast<int>(c)] = true;
  }
  // Not collected: holds 1, left out of the weighted mean.
  void Unmeasured(Component c) {
    r.components[static_cast<int>(c)] = 1;
    r.measured[static_cast<int>(c)] = false;
  }
};

// Freshness: age of the newest sample in poll intervals; `stale` beyond the
// full knot, `no_data` without samples. Returns whether the newest is fresh.
bool ScoreFreshness(const VmInput& in, const Params& p, Tally& t) {
  if (in.samples.empty()) {
    t.r.freshness_age_s = std::numeric_limits<double>::infinity();
    t.Set(Component::kFreshness, 0);
    t.Raise(Reason::kNoData);
    return false;
  }
  const double full_s = p.freshness_full_intervals * in.poll_interval_s;
  const double zero_s = p.freshness_zero_intervals * in.poll_interval_s;
  const double age_s = std::max(
      0.0,
      static_cast<double>(SaturatingSub(in.now_mono_ns, in.samples.back().host_mono_ns)) * kNsToS);
  t.r.freshness_age_s = age_s;
  t.Set(Component::kFreshness, Ramp(age_s, full_s, zero_s));
  const bool fresh = age_s <= full_s;  // Ramp is 1 exactly then
  if (!fresh) t.Raise(Reason::kStale);
  return fresh;
}

// Agent reachability: a reason whenever the last attempt failed (none before
// the first attempt); a gate only when there is no fresh sample to score.
void ScoreAgent(const VmInput& in, const Params& p, bool fresh, Tally& t) {
  if (!in.agent_attempted || in.agent_reachable) return;
  t.Raise(Reason::kAgentUnreachable);
  if (!fresh) t.Gate(Reason::kAgentUnreachable, p.gate_agent_unreachable_max);
}

// Offset: the newest sample, against UTC when the host's offset is known.
// offset_elevated up to the warning knot, offset_high (gate) beyond it,
// offset_critical (gate) beyond the critical knot.
void ScoreOffset(const VmInput& in, const Params& p, Tally& t) {
  if (in.samples.empty()) {
    t.Set(Component::kOffset, 0);  // named by no_data
    return;
  }
  double offset_s = in.samples.back().offset_s;
  if (in.host && in.host->offset_s) offset_s += *in.host->offset_s;
  t.r.offset_used_s = offset_s;
  // Scored net of the measurement's own uncertainty: the true offset is at
  // least |offset| - uncertainty, so a noisy bracket (a loaded host) does not
  // raise offset reasons the guest has not earned.
  const double uncertainty_s = std::max(0.0, in.samples.back().uncertainty_s);
  const double abs_s = std::isfinite(offset_s) ? std::max(0.0, std::fabs(offset_s) - uncertainty_s)
                                               : std::numeric_limits<double>::infinity();
  t.Set(Component::kOffset, OffsetComponent(abs_s, p));
  if (abs_s > p.offset_warning_s) {
    t.Gate(Reason::kOffsetHigh, p.gate_offset_high_max);
  } else if (abs_s > p.offset_elevated_s) {
    t.Raise(Reason::kOffsetElevated);
  }
  if (abs_s > p.offset_critical_s) t.Gate(Reason::kOffsetCritical, p.gate_offset_critical_max);
}

// The drift window: the suffix of samples taken at or after now - window
// (samples are oldest first, host monotonic increasing, as the store keeps
// them). Usually the whole history: one comparison, no search.
std::span<const ClockSample> DriftWindow(const VmInput& in, const Params& p) {
  const std::span<const ClockSample> all = in.samples;
  const int64_t cutoff_ns = SaturatingSub(in.now_mono_ns, WindowNs(p.drift_window_s));
  if (all.empty() || all.front().host_mono_ns >= cutoff_ns) return all;
  const auto first = std::partition_point(
      all.begin(), all.end(),
      [cutoff_ns](const ClockSample& s) { return s.host_mono_ns < cutoff_ns; });
  return all.subspan(static_cast<size_t>(first - all.begin()));
}

// Drift: step-robust slope, scored on |slope| less its uncertainty;
// drift_high exactly when the component is below 1.
void ScoreDrift(bool have_samples, const Params& p, Tally& t) {
  if (!t.r.drift) {
    // Too few samples to tell: no evidence of drift, unless there is no data.
    t.Set(Component::kDrift, have_samples ? 1 : 0);
    return;
  }
  const double scored = std::max(
      0.0, std::fabs(t.r.drift->ratio) - p.drift_confidence_sigmas * t.r.drift->standard_error);
  t.Set(Component::kDrift, Ramp(scored, p.drift_full_ratio, p.drift_zero_ratio));
  if (!(scored <= p.drift_full_ratio)) t.Raise(Reason::kDriftHigh);
}

// The pair (window[i-1], window[i]) fell behind like a backward step, but
// the guest clock itself went back less than step_threshold_s and the next
// pair is stopped: the clock stopped during this pair (a hold that resets it
// to its current second loses at most that second). It is the stop's first
// pair, counted once with the stop, not a backward step. Known only in
// hindsight: the store's step counter, which sees one pair at a time, may
// count it as a step.
bool StopOnset(const PairDelta& d, std::span<const ClockSample> window, const PairDelta* deltas,
               size_t i, const Params& p) {
  if (i + 1 >= window.size() || !(d.guest_s > -p.step_threshold_s)) return false;
  const PairDelta next = deltas != nullptr ? deltas[i] : DeltaBetween(window[i], window[i + 1], p);
  return next.stopped;
}

// Stability: steps and stops between consecutive samples of the window
// (interrupted pairs are neither). Each event is named: step_forward,
// step_backward, clock_stopped.
void ScoreStability(std::span<const ClockSample> window, const PairDelta* deltas, bool have_samples,
                    const Params& p, Tally& t) {
  const double drift_ratio = t.r.drift ? t.r.drift->ratio : 0;
  StepCounts& steps = t.r.steps_in_window;
  int stops = 0;
  for (size_t i = 1; i < window.size(); ++i) {
    const PairDelta d =
        deltas != nullptr ? deltas[i - 1] : DeltaBetween(window[i - 1], window[i], p);
    if (d.stopped) {
      ++stops;
      continue;
    }
    const StepDirection step = StepOf(d, drift_ratio, p.step_threshold_s);
    if (step == StepDirection::kBackward && StopOnset(d, window, deltas, i, p)) continue;
    switch (step) {
      case StepDirection::kForward:
        ++steps.forward;
        break;
      case StepDirection::kBackward:
        ++steps.backward;
        break;
      case StepDirection::kNone:
        break;
    }
  }
  t.r.stops_in_window = stops;
  if (steps.forward > 0) t.Raise(Reason::kStepForward);
  if (steps.backward > 0) t.Raise(Reason::kStepBackward);
  if (stops > 0) t.Raise(Reason::kClockStopped);
  const double events = steps.forward + stops + p.stability_backward_step_events * steps.backward;
  t.Set(Component::kStability,
        have_samples
            ? Clamp01(1 - events / static_cast<double>(std::max(1, p.stability_zero_events)))
            : 0);
}

// Drift and stability over the drift window, sharing one pass of pair deltas.
void ScoreWindow(const VmInput& in, const Params& p, Tally& t) {
  const std::span<const ClockSample> window = DriftWindow(in, p);
  std::array<PairDelta, kMaxStackPairs> stack_deltas;
  const bool keep = window.size() >= 2 && window.size() - 1 <= kMaxStackPairs;
  t.r.drift = FitDrift(window, p, keep ? stack_deltas.data() : nullptr);
  ScoreDrift(!in.samples.empty(), p, t);
  ScoreStability(window, keep ? stack_deltas.data() : nullptr, !in.samples.empty(), p, t);
}

// Clock stopped now: the last two samples of a running domain (gate).
void ScoreStoppedNow(const VmInput& in, const Params& p, Tally& t) {
  const std::span<const ClockSample> all = in.samples;
  if (in.running && all.size() >= 2 && StoppedBetween(all[all.size() - 2], all.back(), p)) {
    t.r.clock_stopped = true;
    t.Gate(Reason::kClockStopped, p.gate_clock_stopped_max);
  }
}

// resumed_behind (gate): the guest lost more than offset_elevated_s across
// the last interrupted pair, and every sample since, that one included, is
// behind the host (offset_s, guest - host) by more than offset_elevated_s.
// Walks back from the newest sample and stops at the first one that is not
// behind: one comparison for a VM that is not behind.
void ScoreResumedBehind(const VmInput& in, const Params& p, Tally& t) {
  const std::span<const ClockSample> all = in.samples;
  for (size_t i = all.size(); i-- > 0;) {
    // Behind beyond the measurement's uncertainty; else it came back (or NaN).
    if (!(all[i].offset_s + std::max(0.0, all[i].uncertainty_s) < -p.offset_elevated_s)) return;
    if (!all[i].after_interruption) continue;
    if (i == 0) return;  // the interrupted pair is no longer in the history
    const Elapsed e = ElapsedBetween(all[i - 1], all[i]);
    if (e.host_s - e.guest_s > p.offset_elevated_s) {
      t.Gate(Reason::kResumedBehind, p.gate_resumed_behind_max);
    }
    return;
  }
}

// Guest daemon status (optional). Not collected: sync_state and stratum are
// left out. Collected: unsynchronised zeroes both (its stratum is 16 by
// definition); an unknown state scores sync_unknown_value (guest_sync_unknown);
// a stratum above stratum_full is stratum_high, gated at stratum_zero (a
// daemon serving its own clock); no stratum reported: stratum left out.
void ScoreGuest(const VmInput& in, const Params& p, Tally& t) {
  if (!in.guest) {
    t.Unmeasured(Component::kSyncState);
    t.Unmeasured(Component::kStratum);
    return;
  }
  const GuestSyncStatus& g = *in.guest;
  if (g.leap == LeapStatus::kInsertSecond || g.leap == LeapStatus::kDeleteSecond) {
    t.Raise(Reason::kLeapPending);  // informational: no penalty
  }
  const bool stratum_unsynced = g.stratum && (*g.stratum <= 0 || *g.stratum >= 16);
  if (g.state == SyncState::kUnsynchronised || g.leap == LeapStatus::kUnsynchronised ||
      stratum_unsynced) {
    t.Set(Component::kSyncState, 0);
    t.Set(Component::kStratum, 0);
    t.Raise(Reason::kUnsynchronised);
    return;
  }
  if (g.state == SyncState::kSynchronised) {
    t.Set(Component::kSyncState, 1);
  } else {
    t.Set(Component::kSyncState, p.sync_unknown_value);
    t.Raise(Reason::kGuestSyncUnknown);
  }
  if (!g.stratum) {
    t.Unmeasured(Component::kStratum);
    return;
  }
  t.Set(Component::kStratum, StratumComponent(*g.stratum, p.stratum_full, p.stratum_zero));
  if (*g.stratum > p.stratum_full) t.Raise(Reason::kStratumHigh);
  if (*g.stratum >= p.stratum_zero) t.Gate(Reason::kStratumHigh, p.gate_stratum_max);
}

// Host reference (optional). Not collected or state unknown: left out.
// Unsynchronised, or at stratum 0 or >= stratum_zero (a local clock):
// 0, host_unsynchronised. Above host_stratum_full: host_stratum_high.
void ScoreHost(const VmInput& in, const Params& p, Tally& t) {
  if (!in.host || in.host->state == SyncState::kUnknown) {
    t.Unmeasured(Component::kHostReference);
    return;
  }
  const HostReference& h = *in.host;
  const bool stratum_unsynced =
      h.stratum && (*h.stratum <= 0 || *h.stratum >= std::min(16, p.stratum_zero));
  if (h.state == SyncState::kUnsynchronised || stratum_unsynced) {
    t.Set(Component::kHostReference, 0);
    t.Raise(Reason::kHostUnsynchronised);
    return;
  }
  if (!h.stratum) {
    t.Set(Component::kHostReference, 1);  // e.g. kernel timex: synchronised, no stratum
    return;
  }
  t.Set(Component::kHostReference,
        StratumComponent(*h.stratum, p.host_stratum_full, p.stratum_zero));
  if (*h.stratum > p.host_stratum_full) t.Raise(Reason::kHostStratumHigh);
}

// Group (optional): the same-host spread of the VM's group beyond
// group_skew_s raises group_skew. No component and no gate: which member is
// wrong is for the members' own offsets to say.
void ScoreGroup(const VmInput& in, const Params& p, Tally& t) {
  if (in.group_offset_spread_s && *in.group_offset_spread_s > p.group_skew_s) {
    t.Raise(Reason::kGroupSkew);
  }
}

// Weighted mean of the measured components, the gates, the band and the
// reasons in enum order.
void Combine(const Params& p, Tally& t) {
  ScoreResult& r = t.r;
  const double weights[kComponentCount] = {
      p.weight_offset,    p.weight_sync_state, p.weight_stratum,        p.weight_drift,
      p.weight_stability, p.weight_freshness,  p.weight_host_reference,
  };
  double sum_w = 0;
  double sum = 0;
  for (int i = 0; i < kComponentCount; ++i) {
    r.components[i] = Clamp01(r.components[i]);
    if (!r.measured[i]) continue;
    sum_w += weights[i];
    sum += weights[i] * r.components[i];
  }
  double score = sum_w > 0 ? 100 * sum / sum_w : 0;
  score = std::min(score, t.cap);
  r.score = std::isfinite(score) ? std::clamp(score, 0.0, 100.0) : 0;
  r.band = r.score >= p.band_good_min       ? Band::kGood
           : r.score >= p.band_degraded_min ? Band::kDegraded
                                            : Band::kBad;
  r.reasons = ReasonSet::FromBits(t.reasons);
}

}  // namespace

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

bool StoppedBetween(const ClockSample& prev, const ClockSample& cur, const Params& params) {
  return !cur.after_interruption && StoppedElapsed(ElapsedBetween(prev, cur), params.stopped_ratio);
}

StepDirection StepBetween(const ClockSample& prev, const ClockSample& cur, double drift_ratio,
                          const Params& params) {
  if (!std::isfinite(drift_ratio)) drift_ratio = 0;
  // Change of (guest clock - host monotonic) not explained by the drift;
  // stops, interruptions, duplicates and disorder are not steps.
  return StepOf(DeltaBetween(prev, cur, params), drift_ratio, params.step_threshold_s);
}

std::optional<DriftEstimate> EstimateDrift(std::span<const ClockSample> samples,
                                           const Params& params) {
  return FitDrift(samples, params, nullptr);
}

ScoreResult Score(const VmInput& in, const Params& p) {
  ScoreResult r;
  Tally t{r};
  const bool fresh = ScoreFreshness(in, p, t);
  ScoreAgent(in, p, fresh, t);
  ScoreOffset(in, p, t);
  ScoreWindow(in, p, t);
  ScoreStoppedNow(in, p, t);
  ScoreResumedBehind(in, p, t);
  ScoreGuest(in, p, t);
  ScoreHost(in, p, t);
  ScoreGroup(in, p, t);
  Combine(p, t);
  return r;
}

}  // namespace vmtime::scoring
