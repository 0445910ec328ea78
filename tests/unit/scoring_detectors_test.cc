// Unit tests of the scoring detectors used on their own (StepBetween,
// StoppedBetween, EstimateDrift; with interrupted pairs and held clocks), of
// Validate(Params) and of the stable component and reason names.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "scoring/score.h"
#include "tests/unit/scoring_history_builder.h"

namespace vmtime::scoring {
namespace {

using testing::HistoryBuilder;
constexpr int64_t kS = HistoryBuilder::kSecond;

// A sample at host time `t_s` (seconds after an arbitrary origin) whose guest
// clock reads host realtime + `offset_s`.
ClockSample At(double t_s, double offset_s) {
  ClockSample s;
  s.host_mono_ns = 5'000 * kS + HistoryBuilder::Ns(t_s);
  s.host_real_ns = 1'767'225'600 * kS + HistoryBuilder::Ns(t_s);
  s.guest_real_ns = s.host_real_ns + HistoryBuilder::Ns(offset_s);
  s.offset_s = static_cast<double>(s.guest_real_ns - s.host_real_ns) / 1e9;
  return s;
}

// The same sample, marked as taken after a pause, save/restore or migration.
ClockSample Interrupted(ClockSample s) {
  s.after_interruption = true;
  return s;
}

// --- StepBetween -----------------------------------------------------------

TEST(StepBetween, ForwardBackwardAndWithinThreshold) {
  const Params p;  // step_threshold_s = 1
  EXPECT_EQ(StepBetween(At(0, 0), At(15, 1.5), 0, p), StepDirection::kForward);
  EXPECT_EQ(StepBetween(At(0, 0), At(15, -1.5), 0, p), StepDirection::kBackward);
  EXPECT_EQ(StepBetween(At(0, 0), At(15, 0.9), 0, p), StepDirection::kNone);
  EXPECT_EQ(StepBetween(At(0, 0), At(15, -0.9), 0, p), StepDirection::kNone);
  // Eight minutes backwards: the guest clock itself ran backwards.
  EXPECT_EQ(StepBetween(At(0, 0), At(15, -480), 0, p), StepDirection::kBackward);
}

TEST(StepBetween, DriftExplainsPartOfTheChange) {
  const Params p;
  // 1.5 s over 1000 s is a 1500 ppm drift: no step when that drift is known.
  EXPECT_EQ(StepBetween(At(0, 0), At(1000, 1.5), 0, p), StepDirection::kForward);
  EXPECT_EQ(StepBetween(At(0, 0), At(1000, 1.5), 1.5e-3, p), StepDirection::kNone);
  // ...but a jump beyond the drift still is.
  EXPECT_EQ(StepBetween(At(0, 0), At(1000, 3.0), 1.5e-3, p), StepDirection::kForward);
  EXPECT_EQ(StepBetween(At(0, 0), At(1000, -0.5), 1.5e-3, p), StepDirection::kBackward);
  // A non-finite drift is ignored rather than poisoning the comparison.
  EXPECT_EQ(StepBetween(At(0, 0), At(15, 2), std::nan(""), p), StepDirection::kForward);
}

TEST(StepBetween, ThresholdIsConfigurable) {
  Params p;
  p.step_threshold_s = 5;
  EXPECT_EQ(StepBetween(At(0, 0), At(15, 3), 0, p), StepDirection::kNone);
  EXPECT_EQ(StepBetween(At(0, 0), At(15, 6), 0, p), StepDirection::kForward);
}

TEST(StepBetween, IgnoresHostRealtimeSteps) {
  const Params p;
  // The host's realtime clock stepped +3 s between the samples; the guest
  // clock advanced exactly as host monotonic time did. Offsets (guest - host
  // realtime) differ by 3 s, but the guest did not step.
  ClockSample a = At(0, 0);
  ClockSample b = At(15, 0);
  b.host_real_ns += 3 * kS;
  b.offset_s = static_cast<double>(b.guest_real_ns - b.host_real_ns) / 1e9;
  EXPECT_EQ(StepBetween(a, b, 0, p), StepDirection::kNone);
}

TEST(StepBetween, StopsDuplicatesAndDisorderAreNotSteps) {
  const Params p;
  ClockSample a = At(0, 0);
  ClockSample frozen = At(15, -15);  // guest clock did not advance
  EXPECT_EQ(StepBetween(a, frozen, 0, p), StepDirection::kNone);
  EXPECT_EQ(StepBetween(a, a, 0, p), StepDirection::kNone);
  EXPECT_EQ(StepBetween(At(15, 5), At(0, 0), 0, p), StepDirection::kNone);
  // A held clock reset back by 0.1 s over 15 s of host time: a stop, not a
  // backward step (it was a backward step before issue 12).
  EXPECT_EQ(StepBetween(a, At(15, -15.1), 0, p), StepDirection::kNone);
  EXPECT_EQ(StepBetween(a, At(15, -14.9), 0, p), StepDirection::kNone);
  // Moving back by more than stopped_ratio x host elapsed is a step again.
  EXPECT_EQ(StepBetween(a, At(15, -16.6), 0, p), StepDirection::kBackward);
}

TEST(StepBetween, InterruptedPairsAreNotSteps) {
  const Params p;
  // Paused 20.9 s between two 15 s polls: the guest clock advanced 15 s of 35.9.
  EXPECT_EQ(StepBetween(At(0, 0), At(35.9, -20.9), 0, p), StepDirection::kBackward);
  EXPECT_EQ(StepBetween(At(0, 0), Interrupted(At(35.9, -20.9)), 0, p), StepDirection::kNone);
  // Whatever the guest clock did across it.
  EXPECT_EQ(StepBetween(At(0, 0), Interrupted(At(15, 600)), 0, p), StepDirection::kNone);
  // Only the later sample's mark counts: the pair after it is judged again.
  EXPECT_EQ(StepBetween(Interrupted(At(0, 0)), At(15, 5), 0, p), StepDirection::kForward);
}

// --- StoppedBetween --------------------------------------------------------

TEST(StoppedBetween, RatioOfGuestToHostElapsed) {
  const Params p;                                           // stopped_ratio = 0.1
  EXPECT_TRUE(StoppedBetween(At(0, 0), At(15, -15), p));    // guest elapsed 0
  EXPECT_TRUE(StoppedBetween(At(0, 0), At(15, -14), p));    // 1/15 = 0.067
  EXPECT_FALSE(StoppedBetween(At(0, 0), At(15, -13), p));   // 2/15 = 0.13
  EXPECT_FALSE(StoppedBetween(At(0, 0), At(15, 0), p));     // running
  EXPECT_FALSE(StoppedBetween(At(0, 0), At(15, -480), p));  // went far backwards: a step
  EXPECT_FALSE(StoppedBetween(At(0, 0), At(0, -1), p));     // no host time elapsed
  EXPECT_FALSE(StoppedBetween(At(15, 0), At(0, 0), p));     // out of order
}

TEST(StoppedBetween, SmallMovementInEitherDirection) {
  const Params p;  // |guest elapsed| < 1.5 s over 15 s
  // Held near a value by something that keeps resetting it: back by 0.1 s
  // (was "went backwards", not a stop, before issue 12).
  EXPECT_TRUE(StoppedBetween(At(0, 0), At(15, -15.1), p));
  EXPECT_TRUE(StoppedBetween(At(0, 0), At(15, -16.4), p));   // back 1.4 s
  EXPECT_FALSE(StoppedBetween(At(0, 0), At(15, -16.6), p));  // back 1.6 s: a step
  EXPECT_TRUE(StoppedBetween(At(0, 0), At(15, -13.6), p));   // forward 1.4 s
  // Over a long gap the bound grows with host time: 10 s back over 600 s.
  EXPECT_TRUE(StoppedBetween(At(0, 0), At(600, -610), p));
}

TEST(StoppedBetween, InterruptedPairIsNotAStop) {
  const Params p;
  // Paused 10 minutes: the guest clock advanced 15 s of 615.
  EXPECT_TRUE(StoppedBetween(At(0, 0), At(615, -600), p));
  EXPECT_FALSE(StoppedBetween(At(0, 0), Interrupted(At(615, -600)), p));
  EXPECT_FALSE(StoppedBetween(At(0, 0), Interrupted(At(15, -15)), p));
}

TEST(StoppedBetween, UsesGuestAndHostMonotonicNotOffsets) {
  const Params p;
  // guest_real frozen while host monotonic advances: stopped, whatever the
  // recorded offset_s claims.
  ClockSample a = At(0, 0);
  ClockSample b = a;
  b.host_mono_ns += 15 * kS;
  b.host_real_ns += 15 * kS;
  b.offset_s = 0;  // inconsistent on purpose: the detector must not read it
  EXPECT_TRUE(StoppedBetween(a, b, p));
  Params loose;
  loose.stopped_ratio = 0.5;
  EXPECT_TRUE(StoppedBetween(At(0, 0), At(10, -6), loose));   // 4/10
  EXPECT_FALSE(StoppedBetween(At(0, 0), At(10, -4), loose));  // 6/10
}

// --- EstimateDrift ---------------------------------------------------------

TEST(EstimateDrift, RecoversKnownSlopeExactly) {
  const Params p;
  for (double ratio : {0.0, 26.6e-6, -37e-6, 500e-6, -2e-3}) {
    std::vector<ClockSample> s;
    for (int i = 0; i < 64; ++i) s.push_back(At(i * 15.0, 0.25 + ratio * i * 15.0));
    const auto d = EstimateDrift(s, p);
    ASSERT_TRUE(d.has_value()) << ratio;
    EXPECT_NEAR(d->ratio, ratio, 1e-9) << ratio;
    EXPECT_LT(d->standard_error, 1e-9) << ratio;
    EXPECT_EQ(d->samples, 64);
  }
}

TEST(EstimateDrift, StandardErrorMatchesNoise) {
  const Params p;
  std::mt19937 rng(7);
  std::normal_distribution<double> noise(0, 0.001);  // 1 ms measurement noise
  const double ratio = 40e-6;
  std::vector<ClockSample> s;
  for (int i = 0; i < 240; ++i) s.push_back(At(i * 15.0, ratio * i * 15.0 + noise(rng)));
  const auto d = EstimateDrift(s, p);
  ASSERT_TRUE(d.has_value());
  // Theory: SE = sigma / sqrt(Sxx); Sxx = sum (x - mean)^2 over the 240 times.
  double mean = 0, sxx = 0;
  for (int i = 0; i < 240; ++i) mean += i * 15.0 / 240;
  for (int i = 0; i < 240; ++i) sxx += (i * 15.0 - mean) * (i * 15.0 - mean);
  const double expected_se = 0.001 / std::sqrt(sxx);
  EXPECT_GT(d->standard_error, expected_se * 0.7);
  EXPECT_LT(d->standard_error, expected_se * 1.3);
  EXPECT_NEAR(d->ratio, ratio, 4 * d->standard_error);
  EXPECT_GT(d->standard_error, 0);
}

TEST(EstimateDrift, TooFewSamplesOrNoTimeSpread) {
  const Params p;  // drift_min_samples = 4
  std::vector<ClockSample> three = {At(0, 0), At(15, 0), At(30, 0)};
  EXPECT_FALSE(EstimateDrift(three, p).has_value());
  EXPECT_FALSE(EstimateDrift({}, p).has_value());
  std::vector<ClockSample> same_time(8, At(0, 0));
  EXPECT_FALSE(EstimateDrift(same_time, p).has_value());
  std::vector<ClockSample> four = {At(0, 0), At(15, 0), At(30, 0), At(45, 0)};
  EXPECT_TRUE(EstimateDrift(four, p).has_value());
}

TEST(EstimateDrift, StepsDoNotReadAsDrift) {
  const Params p;
  // 30 ppm drift with an 8-minute backward step in the middle: one slope,
  // one intercept per step-free segment.
  auto h = HistoryBuilder(0).Drift(30e-6).Steady(30).Step(-480).Steady(30);
  const auto d = EstimateDrift(h.samples(), p);
  ASSERT_TRUE(d.has_value());
  EXPECT_NEAR(d->ratio, 30e-6, 1e-8);
  EXPECT_EQ(d->samples, 60);
  // Plain least squares over the same samples would give a huge slope: the
  // store relies on this robustness when it feeds the drift to StepBetween.
  auto h2 = HistoryBuilder(0).Steady(30).Stopped(5).Steady(30);
  const auto d2 = EstimateDrift(h2.samples(), p);
  ASSERT_TRUE(d2.has_value());
  EXPECT_NEAR(d2->ratio, 0, 1e-9);
}

TEST(EstimateDrift, InterruptionStartsANewSegment) {
  const Params p;
  // 40 ppm drift, paused 0.8 s in the middle (below the step threshold, so
  // only the mark breaks the segment): the lost 0.8 s does not read as drift.
  auto h = HistoryBuilder(0).Drift(40e-6).Steady(30).Pause(0.8).Steady(30);
  const auto d = EstimateDrift(h.samples(), p);
  ASSERT_TRUE(d.has_value());
  EXPECT_NEAR(d->ratio, 40e-6, 1e-8);
  EXPECT_EQ(d->samples, 60);
  // The same pause unmarked is fitted as part of the segment: a biased slope.
  auto missed = HistoryBuilder(0).Drift(40e-6).Steady(30).Pause(0.8, false).Steady(30);
  const auto biased = EstimateDrift(missed.samples(), p);
  ASSERT_TRUE(biased.has_value());
  EXPECT_LT(biased->ratio, 0);
}

TEST(EstimateDrift, AllIntervalsBrokenMeansNoEstimate) {
  const Params p;
  auto h = HistoryBuilder(0).Steady(1).Step(5).Steady(1).Step(5).Steady(1).Step(5).Steady(1);
  EXPECT_FALSE(EstimateDrift(h.samples(), p).has_value());
}

// --- Validate --------------------------------------------------------------

TEST(Validate, DefaultsAreValid) { EXPECT_EQ(Validate(Params{}), ""); }

struct BadParams {
  const char* field;
  void (*mutate)(Params&);
};

TEST(Validate, NamesTheBadField) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  static double nan_storage;
  nan_storage = nan;
  const BadParams cases[] = {
      {"offset_full_s", [](Params& p) { p.offset_full_s = -1; }},
      {"offset_elevated_s", [](Params& p) { p.offset_elevated_s = 0.001; }},
      {"offset_elevated_s", [](Params& p) { p.offset_elevated_s = 40; }},
      {"offset_elevated_s", [](Params& p) { p.offset_elevated_s = 5; }},  // 3.8 silent points
      {"offset_warning_s", [](Params& p) { p.offset_warning_s = p.offset_full_s; }},
      {"offset_critical_s", [](Params& p) { p.offset_critical_s = 10; }},
      {"offset_zero_s", [](Params& p) { p.offset_zero_s = 300; }},
      {"offset_zero_s", [](Params& p) { p.offset_zero_s = nan_storage; }},
      {"offset_warning_value", [](Params& p) { p.offset_warning_value = 1.5; }},
      {"offset_critical_value", [](Params& p) { p.offset_critical_value = 0.7; }},
      {"stratum_full", [](Params& p) { p.stratum_full = -1; }},
      {"stratum_zero", [](Params& p) { p.stratum_zero = 4; }},
      {"host_stratum_full", [](Params& p) { p.host_stratum_full = 12; }},
      {"sync_unknown_value", [](Params& p) { p.sync_unknown_value = -0.1; }},
      {"drift_full_ratio", [](Params& p) { p.drift_full_ratio = -1e-6; }},
      {"drift_zero_ratio", [](Params& p) { p.drift_zero_ratio = 10e-6; }},
      {"drift_min_samples", [](Params& p) { p.drift_min_samples = 2; }},
      {"drift_window_s", [](Params& p) { p.drift_window_s = 0; }},
      {"drift_confidence_sigmas", [](Params& p) { p.drift_confidence_sigmas = -1; }},
      {"step_threshold_s", [](Params& p) { p.step_threshold_s = 0; }},
      {"stopped_ratio", [](Params& p) { p.stopped_ratio = 1; }},
      {"stability_zero_events", [](Params& p) { p.stability_zero_events = 0; }},
      {"stability_backward_step_events", [](Params& p) { p.stability_backward_step_events = -1; }},
      {"freshness_full_intervals", [](Params& p) { p.freshness_full_intervals = -2; }},
      {"freshness_zero_intervals", [](Params& p) { p.freshness_zero_intervals = 2; }},
      {"weight_offset", [](Params& p) { p.weight_offset = -0.1; }},
      {"weight_drift", [](Params& p) { p.weight_drift = nan_storage; }},
      {"weight_host_reference", [](Params& p) { p.weight_host_reference = -1; }},
      {"weight_*",
       [](Params& p) {
         p.weight_offset = p.weight_sync_state = p.weight_stratum = p.weight_drift = 0;
         p.weight_stability = p.weight_freshness = p.weight_host_reference = 0;
       }},
      {"gate_clock_stopped_max", [](Params& p) { p.gate_clock_stopped_max = 101; }},
      {"gate_offset_critical_max", [](Params& p) { p.gate_offset_critical_max = -1; }},
      {"gate_agent_unreachable_max", [](Params& p) { p.gate_agent_unreachable_max = nan_storage; }},
      {"gate_offset_high_max", [](Params& p) { p.gate_offset_high_max = 120; }},
      {"gate_stratum_max", [](Params& p) { p.gate_stratum_max = -5; }},
      {"gate_resumed_behind_max", [](Params& p) { p.gate_resumed_behind_max = nan_storage; }},
      {"explain_min_points", [](Params& p) { p.explain_min_points = -1; }},
      {"weight_*",
       [](Params& p) {
         p.weight_offset = p.weight_drift = p.weight_stability = p.weight_freshness = 0;
       }},
      {"band_good_min", [](Params& p) { p.band_good_min = 50; }},
  };
  for (const auto& c : cases) {
    Params p;
    c.mutate(p);
    const std::string msg = Validate(p);
    EXPECT_FALSE(msg.empty()) << c.field;
    EXPECT_EQ(msg.rfind(std::string(c.field) + ":", 0), 0u) << "got: " << msg;
  }
}

TEST(Validate, AcceptsReasonableTuning) {
  Params p;
  p.offset_warning_s = 10;
  p.offset_warning_value = 0.5;
  p.offset_critical_value = 0.5;  // equal values are allowed (flat segment)
  p.weight_host_reference = 0;    // a zero weight drops the component
  p.stratum_full = 2;
  p.stratum_zero = 16;
  EXPECT_EQ(Validate(p), "");
  // A looser offset_elevated_s with a matching explain_min_points.
  p = Params{};
  p.offset_elevated_s = 1;
  EXPECT_EQ(Validate(p), "");
  p.offset_elevated_s = 5;
  p.explain_min_points = 4;
  EXPECT_EQ(Validate(p), "");
  // Only the always-measured weights: guest and host status cost nothing.
  p = Params{};
  p.weight_sync_state = p.weight_stratum = p.weight_host_reference = 0;
  EXPECT_EQ(Validate(p), "");
}

// --- Names -----------------------------------------------------------------

TEST(Names, ComponentsMatchTheMetricContract) {
  const char* expected[] = {"offset",    "sync_state", "stratum",       "drift",
                            "stability", "freshness",  "host_reference"};
  ASSERT_EQ(std::size(expected), static_cast<size_t>(kComponentCount));
  for (int i = 0; i < kComponentCount; ++i) {
    EXPECT_EQ(ComponentName(static_cast<Component>(i)), expected[i]);
  }
}

TEST(Names, ReasonsMatchTheMetricContract) {
  const char* expected[] = {
      "offset_elevated", "offset_high",        "offset_critical",     "resumed_behind",
      "clock_stopped",   "step_backward",      "step_forward",        "drift_high",
      "unsynchronised",  "guest_sync_unknown", "stratum_high",        "leap_pending",
      "stale",           "agent_unreachable",  "host_unsynchronised", "host_stratum_high",
      "no_data",         "group_skew"};
  ASSERT_EQ(std::size(expected), static_cast<size_t>(kReasonCount));
  std::set<std::string> seen;
  for (int i = 0; i < kReasonCount; ++i) {
    EXPECT_EQ(ReasonName(static_cast<Reason>(i)), expected[i]);
    seen.insert(std::string(ReasonName(static_cast<Reason>(i))));
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kReasonCount));
}

}  // namespace
}  // namespace vmtime::scoring
