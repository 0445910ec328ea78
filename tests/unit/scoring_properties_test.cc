// Property tests of the scoring engine over randomised inputs (fixed seeds,
// bounded counts, std::mt19937): the score stays in 0..100, never rises as
// |offset| grows with all else fixed, is deterministic, does not depend on
// the origin of the timestamps, agrees with the public detectors, and every
// lost point is explained (tests/unit/scoring_explain.h) under the default
// Params and under randomised valid Params. Pauses are neither stops nor
// steps, and a clock that moves little against host time, in either
// direction, is stopped.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "scoring/score.h"
#include "tests/unit/scoring_explain.h"

namespace vmtime::scoring {
namespace {

constexpr int kCases = 2000;
constexpr int64_t kSecond = 1'000'000'000;

// A random VM: history with drift, noise, steps, stops, held clocks,
// interruptions (marked pauses, some unmarked) and gaps; random optional
// guest and host status; random reachability and evaluation time.
struct RandomVm {
  std::vector<ClockSample> samples;
  VmInput input;

  void Bind() { input.samples = samples; }
};

RandomVm MakeRandomVm(std::mt19937& rng, int max_samples = 80) {
  auto uniform = [&rng](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };
  auto chance = [&rng](double p) { return std::bernoulli_distribution(p)(rng); };
  auto pick = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };

  RandomVm vm;
  const int n = pick(0, max_samples);
  const double interval_s = uniform(1, 60);
  const double drift = chance(0.5) ? uniform(-1e-3, 1e-3) : uniform(-50e-6, 50e-6);
  int64_t mono = static_cast<int64_t>(uniform(1, 1e6)) * kSecond;
  int64_t real = 1'700'000'000 * kSecond + static_cast<int64_t>(uniform(0, 1e8)) * kSecond;
  int64_t guest = real + static_cast<int64_t>(uniform(-2000, 2000) * 1e9);
  const bool held_vm = chance(0.1);  // something keeps resetting the clock
  for (int i = 0; i < n; ++i) {
    int64_t dt = static_cast<int64_t>(interval_s * uniform(0.9, 1.1) * 1e9);
    if (chance(0.03)) dt += static_cast<int64_t>(uniform(0, 3600) * 1e9);  // gap
    bool interrupted = false;
    int64_t frozen_ns = 0;
    if (chance(0.05)) {           // pause, save/restore or migration: the guest clock lost time
      interrupted = chance(0.8);  // the collector saw it (else: a missed event)
      frozen_ns = static_cast<int64_t>(uniform(0, chance(0.5) ? 2 : 900) * 1e9);
    }
    mono += dt + frozen_ns;
    real += dt + frozen_ns;
    const bool held = held_vm && chance(0.6);
    if (!held && !chance(0.04)) {
      guest += dt + static_cast<int64_t>(drift * static_cast<double>(dt));
    }
    if (chance(0.04)) guest += static_cast<int64_t>(uniform(-600, 600) * 1e9);  // step
    if (chance(0.03)) guest += static_cast<int64_t>(uniform(-0.5, 0.5) * 1e9);  // slew, small step
    const double jitter_s = held ? uniform(-0.2, 0.2) : uniform(-0.002, 0.002);
    ClockSample s;
    s.host_mono_ns = mono;
    s.host_real_ns = real;
    s.guest_real_ns = guest + static_cast<int64_t>(jitter_s * 1e9);
    s.offset_s = static_cast<double>(s.guest_real_ns - s.host_real_ns) / 1e9;
    s.uncertainty_s = uniform(0, 0.01);
    s.after_interruption = interrupted;
    vm.samples.push_back(s);
  }
  VmInput& in = vm.input;
  in.running = chance(0.9);
  in.agent_reachable = chance(0.8);
  in.agent_attempted = chance(0.95);
  in.poll_interval_s = interval_s;
  in.now_mono_ns = mono + static_cast<int64_t>(uniform(0, chance(0.8) ? 60 : 5000) * 1e9);
  if (chance(0.5)) {
    GuestSyncStatus g;
    g.state = static_cast<SyncState>(pick(0, 2));
    if (chance(0.8)) g.stratum = pick(0, 16);
    g.leap = static_cast<LeapStatus>(pick(0, 4));
    g.measured_mono_ns = mono;
    in.guest = g;
  }
  if (chance(0.5)) {
    HostReference h;
    h.state = static_cast<SyncState>(pick(0, 2));
    if (chance(0.8)) h.stratum = pick(0, 16);
    if (chance(0.7)) h.offset_s = uniform(-1, 1) * (chance(0.2) ? 100 : 0.01);
    h.root_distance_s = uniform(0, 0.1);
    in.host = h;
  }
  vm.Bind();
  return vm;
}

void ExpectSameResult(const ScoreResult& a, const ScoreResult& b) {
  EXPECT_EQ(a.score, b.score);
  EXPECT_EQ(a.components, b.components);
  EXPECT_EQ(a.measured, b.measured);
  EXPECT_EQ(a.band, b.band);
  EXPECT_EQ(a.reasons, b.reasons);
  EXPECT_EQ(a.stops_in_window, b.stops_in_window);
  EXPECT_EQ(a.clock_stopped, b.clock_stopped);
  EXPECT_EQ(a.drift.has_value(), b.drift.has_value());
  if (a.drift && b.drift) {
    EXPECT_EQ(a.drift->ratio, b.drift->ratio);
    EXPECT_EQ(a.drift->standard_error, b.drift->standard_error);
    EXPECT_EQ(a.drift->samples, b.drift->samples);
  }
  EXPECT_EQ(a.steps_in_window.forward, b.steps_in_window.forward);
  EXPECT_EQ(a.steps_in_window.backward, b.steps_in_window.backward);
  EXPECT_EQ(a.offset_used_s, b.offset_used_s);
  EXPECT_EQ(a.freshness_age_s, b.freshness_age_s);
}

TEST(ScoringProperties, ScoreAndComponentsInRange) {
  std::mt19937 rng(1);
  const Params params;
  for (int i = 0; i < kCases; ++i) {
    RandomVm vm = MakeRandomVm(rng);
    const ScoreResult r = Score(vm.input, params);
    ASSERT_GE(r.score, 0) << "case " << i;
    ASSERT_LE(r.score, 100) << "case " << i;
    for (double c : r.components) {
      ASSERT_GE(c, 0) << "case " << i;
      ASSERT_LE(c, 1) << "case " << i;
    }
    ASSERT_TRUE(std::is_sorted(r.reasons.begin(), r.reasons.end())) << "case " << i;
    ASSERT_EQ(std::adjacent_find(r.reasons.begin(), r.reasons.end()), r.reasons.end());
    if (vm.samples.empty()) {
      ASSERT_NE(std::find(r.reasons.begin(), r.reasons.end(), Reason::kNoData), r.reasons.end());
    }
  }
}

// Adds the same constant to every sample's offset (and guest clock): the
// history's shape (drift, steps, stops) is unchanged, only |offset| moves.
std::vector<ClockSample> WithNewestOffset(const std::vector<ClockSample>& in, double offset_s) {
  std::vector<ClockSample> out = in;
  const int64_t shift_ns =
      static_cast<int64_t>(std::llround((offset_s - in.back().offset_s) * 1e9));
  for (auto& s : out) {
    s.guest_real_ns += shift_ns;
    s.offset_s = static_cast<double>(s.guest_real_ns - s.host_real_ns) / 1e9;
  }
  return out;
}

TEST(ScoringProperties, NeverRisesAsAbsoluteOffsetGrows) {
  std::mt19937 rng(2);
  const Params params;
  int checked = 0;
  for (int i = 0; i < kCases / 4; ++i) {
    RandomVm vm = MakeRandomVm(rng);
    if (vm.samples.empty()) continue;
    const double sign = std::bernoulli_distribution(0.5)(rng) ? 1 : -1;
    const double host_offset_s =
        vm.input.host && vm.input.host->offset_s ? *vm.input.host->offset_s : 0;
    // |offset used| from 0 to 30 min on a log-ish grid around the knots.
    double prev_score = 101;
    for (double mag : {0.0, 0.001, 0.01, 0.02, 0.5, 1.0, 10.0, 29.9, 30.0, 30.1, 100.0, 299.0,
                       300.0, 300.5, 600.0, 899.0, 900.0, 901.0, 1800.0}) {
      const std::vector<ClockSample> samples =
          WithNewestOffset(vm.samples, sign * mag - host_offset_s);
      VmInput in = vm.input;
      in.samples = samples;
      const ScoreResult r = Score(in, params);
      ASSERT_LE(r.score, prev_score + 1e-9)
          << "case " << i << ": score rose at |offset| " << mag << " (offset used "
          << r.offset_used_s.value_or(0) << ")";
      prev_score = r.score;
      ++checked;
    }
  }
  EXPECT_GT(checked, 1000);
}

TEST(ScoringProperties, NeverRisesAsHostOffsetMovesOffsetAway) {
  std::mt19937 rng(3);
  const Params params;
  for (int i = 0; i < kCases / 4; ++i) {
    RandomVm vm = MakeRandomVm(rng);
    if (vm.samples.empty()) continue;
    HostReference h = vm.input.host.value_or(HostReference{});
    const double vm_offset_s = vm.samples.back().offset_s;
    const double sign = vm_offset_s >= 0 ? 1 : -1;
    double prev_score = 101;
    // UTC offset = vm offset + host offset grows in |.| as the host offset
    // moves in the direction of the vm offset's sign.
    for (double extra : {0.0, 0.01, 1.0, 31.0, 299.0, 301.0, 1000.0}) {
      h.offset_s = sign * extra;
      VmInput in = vm.input;
      in.host = h;
      const ScoreResult r = Score(in, params);
      ASSERT_LE(r.score, prev_score + 1e-9) << "case " << i << " host offset " << *h.offset_s;
      prev_score = r.score;
    }
  }
}

TEST(ScoringProperties, Deterministic) {
  std::mt19937 rng(4);
  const Params params;
  for (int i = 0; i < kCases / 2; ++i) {
    RandomVm vm = MakeRandomVm(rng);
    const ScoreResult a = Score(vm.input, params);
    const ScoreResult b = Score(vm.input, params);
    ExpectSameResult(a, b);
    if (::testing::Test::HasFailure()) FAIL() << "case " << i;
  }
}

TEST(ScoringProperties, IndependentOfTimestampOrigin) {
  std::mt19937 rng(5);
  const Params params;
  std::uniform_int_distribution<int64_t> shift_dist(-100'000'000 * kSecond, 100'000'000 * kSecond);
  for (int i = 0; i < kCases / 2; ++i) {
    RandomVm vm = MakeRandomVm(rng);
    const int64_t shift = shift_dist(rng);
    std::vector<ClockSample> shifted = vm.samples;
    for (auto& s : shifted) {
      s.host_mono_ns += shift;
      s.host_real_ns += shift;
      s.guest_real_ns += shift;
    }
    VmInput in = vm.input;
    in.samples = shifted;
    in.now_mono_ns += shift;
    if (in.guest) in.guest->measured_mono_ns += shift;
    ExpectSameResult(Score(vm.input, params), Score(in, params));
    if (::testing::Test::HasFailure()) FAIL() << "case " << i << " shift " << shift;
  }
}

// Score's own step counts and drift equal what the public detectors give
// over the drift window; long histories (more pairs than Score keeps on the
// stack) exercise its second code path.
TEST(ScoringProperties, AgreesWithDetectorsOnTheWindow) {
  std::mt19937 rng(6);
  Params params;
  params.drift_window_s = 6 * 3600;  // long enough for windows of several hundred samples
  int long_windows = 0;
  for (int i = 0; i < kCases / 4; ++i) {
    RandomVm vm = MakeRandomVm(rng, 600);
    const ScoreResult r = Score(vm.input, params);
    const int64_t cutoff = vm.input.now_mono_ns - static_cast<int64_t>(params.drift_window_s * 1e9);
    std::vector<ClockSample> window;
    for (const auto& s : vm.samples) {
      if (s.host_mono_ns >= cutoff) window.push_back(s);
    }
    if (window.size() > 257) ++long_windows;
    const auto drift = EstimateDrift(window, params);
    ASSERT_EQ(r.drift.has_value(), drift.has_value()) << "case " << i;
    if (drift) {
      ASSERT_EQ(r.drift->ratio, drift->ratio) << "case " << i;
    }
    StepCounts expected;
    int stops = 0;
    for (size_t k = 1; k < window.size(); ++k) {
      if (StoppedBetween(window[k - 1], window[k], params)) ++stops;
      StepDirection step = StepBetween(window[k - 1], window[k], drift ? drift->ratio : 0, params);
      // The first pair of a stop (the guest clock went back less than the
      // step threshold and the next pair is stopped) is part of the stop.
      const double guest_elapsed_s =
          static_cast<double>(window[k].guest_real_ns - window[k - 1].guest_real_ns) * 1e-9;
      if (step == StepDirection::kBackward && k + 1 < window.size() &&
          guest_elapsed_s > -params.step_threshold_s &&
          StoppedBetween(window[k], window[k + 1], params)) {
        step = StepDirection::kNone;
      }
      switch (step) {
        case StepDirection::kForward:
          ++expected.forward;
          break;
        case StepDirection::kBackward:
          ++expected.backward;
          break;
        case StepDirection::kNone:
          break;
      }
    }
    ASSERT_EQ(r.steps_in_window.forward, expected.forward) << "case " << i;
    ASSERT_EQ(r.steps_in_window.backward, expected.backward) << "case " << i;
    const bool stopped_now =
        vm.input.running && vm.samples.size() >= 2 &&
        StoppedBetween(vm.samples[vm.samples.size() - 2], vm.samples.back(), params);
    ASSERT_EQ(r.clock_stopped, stopped_now) << "case " << i;
    ASSERT_EQ(r.stops_in_window, stops) << "case " << i;
    const bool named =
        std::find(r.reasons.begin(), r.reasons.end(), Reason::kClockStopped) != r.reasons.end();
    ASSERT_EQ(named, stops > 0 || stopped_now) << "case " << i;
  }
  EXPECT_GT(long_windows, 10);
}

// Random valid Params around the defaults: every weight, threshold and
// gate moves. Returns nullopt when the draw is not valid (Validate).
std::optional<Params> RandomParams(std::mt19937& rng) {
  auto uniform = [&rng](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };
  auto chance = [&rng](double p) { return std::bernoulli_distribution(p)(rng); };
  auto pick = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto weight = [&] { return chance(0.15) ? 0.0 : uniform(0, 1); };
  Params p;
  p.offset_full_s = uniform(0.001, 0.05);
  p.offset_elevated_s = p.offset_full_s * uniform(1, 40);
  p.offset_warning_s = uniform(5, 60);
  p.offset_warning_value = uniform(0.2, 1);
  p.offset_critical_value = p.offset_warning_value * uniform(0, 1);
  p.offset_critical_s = p.offset_warning_s * uniform(2, 20);
  p.offset_zero_s = p.offset_critical_s * uniform(1.5, 5);
  p.stratum_full = pick(1, 6);
  p.stratum_zero = pick(p.stratum_full + 1, 16);
  p.host_stratum_full = pick(0, p.stratum_zero - 1);
  p.sync_unknown_value = uniform(0, 1);
  p.drift_full_ratio = uniform(1e-6, 100e-6);
  p.drift_zero_ratio = p.drift_full_ratio * uniform(1.5, 20);
  p.drift_confidence_sigmas = uniform(0, 3);
  p.step_threshold_s = uniform(0.2, 5);
  p.stopped_ratio = uniform(0.01, 0.5);
  p.stability_zero_events = pick(1, 6);
  p.stability_backward_step_events = uniform(0, 3);
  p.freshness_full_intervals = uniform(0.5, 4);
  p.freshness_zero_intervals = p.freshness_full_intervals * uniform(1.5, 10);
  p.weight_offset = weight();
  p.weight_sync_state = weight();
  p.weight_stratum = weight();
  p.weight_drift = weight();
  p.weight_stability = weight();
  p.weight_freshness = weight();
  p.weight_host_reference = weight();
  p.gate_clock_stopped_max = uniform(0, 100);
  p.gate_offset_critical_max = uniform(0, 100);
  p.gate_offset_high_max = uniform(0, 100);
  p.gate_agent_unreachable_max = uniform(0, 100);
  p.gate_stratum_max = uniform(0, 100);
  p.gate_resumed_behind_max = uniform(0, 100);
  p.explain_min_points = uniform(0.1, 5);
  p.band_degraded_min = uniform(0, 80);
  p.band_good_min = uniform(p.band_degraded_min, 100);
  if (!Validate(p).empty()) return std::nullopt;
  return p;
}

// The measured flags follow what was collected: offset, drift, stability and
// freshness always; sync_state with guest status; stratum with a reported
// stratum or an unsynchronised daemon; host_reference with a known host state.
void ExpectMeasuredAsCollected(const VmInput& in, const ScoreResult& r, int i) {
  auto m = [&r](Component c) { return r.measured[static_cast<int>(c)]; };
  ASSERT_TRUE(m(Component::kOffset) && m(Component::kDrift) && m(Component::kStability) &&
              m(Component::kFreshness))
      << "case " << i;
  ASSERT_EQ(m(Component::kSyncState), in.guest.has_value()) << "case " << i;
  if (in.guest && in.guest->stratum) {
    ASSERT_TRUE(m(Component::kStratum)) << "case " << i;
  }
  if (!in.guest) {
    ASSERT_FALSE(m(Component::kStratum)) << "case " << i;
  }
  ASSERT_EQ(m(Component::kHostReference), in.host && in.host->state != SyncState::kUnknown)
      << "case " << i;
}

TEST(ScoringProperties, EveryLostPointIsNamed) {
  std::mt19937 rng(7);
  const Params params;
  // Every component must be seen losing more than explain_min_points at
  // least once, or the property would not have been exercised.
  std::array<int, kComponentCount> losing{};
  for (int i = 0; i < kCases * 2; ++i) {
    RandomVm vm = MakeRandomVm(rng);
    const ScoreResult r = Score(vm.input, params);
    ASSERT_EQ(testing::Unexplained(r, params), "") << "case " << i;
    ExpectMeasuredAsCollected(vm.input, r, i);
    for (int c = 0; c < kComponentCount; ++c) {
      if (testing::PointsLost(r, params, static_cast<Component>(c)) > params.explain_min_points) {
        ++losing[c];
      }
    }
  }
  for (int c = 0; c < kComponentCount; ++c) {
    EXPECT_GT(losing[c], 10) << ComponentName(static_cast<Component>(c));
  }
}

TEST(ScoringProperties, EveryLostPointIsNamedUnderRandomParams) {
  std::mt19937 rng(8);
  int valid = 0;
  std::array<int, kComponentCount> losing{};
  for (int i = 0; i < kCases * 2; ++i) {
    const std::optional<Params> params = RandomParams(rng);
    RandomVm vm = MakeRandomVm(rng);
    if (!params) continue;
    ++valid;
    const ScoreResult r = Score(vm.input, *params);
    ASSERT_EQ(testing::Unexplained(r, *params), "") << "case " << i;
    ASSERT_GE(r.score, 0);
    ASSERT_LE(r.score, 100);
    for (int c = 0; c < kComponentCount; ++c) {
      if (testing::PointsLost(r, *params, static_cast<Component>(c)) > params->explain_min_points) {
        ++losing[c];
      }
    }
  }
  EXPECT_GT(valid, kCases / 2);
  for (int c = 0; c < kComponentCount; ++c) {
    EXPECT_GT(losing[c], 10) << ComponentName(static_cast<Component>(c));
  }
}

// Validate refuses an offset_elevated_s below which the offset component
// could lose more than explain_min_points silently; the bound is tight.
TEST(ScoringProperties, ValidateBoundsTheSilentOffsetLoss) {
  Params p;
  // Defaults: 0.40 / (0.40 + 0.15 + 0.05 + 0.10) of 40 points over 10 ms..30 s.
  const double per_s = 100 * 0.40 / 0.70 * 0.4 / (30 - 0.010);
  const double limit_s = 0.010 + p.explain_min_points / per_s;
  p.offset_elevated_s = limit_s * 0.999;
  EXPECT_EQ(Validate(p), "");
  p.offset_elevated_s = limit_s * 1.001;
  EXPECT_EQ(Validate(p).rfind("offset_elevated_s:", 0), 0u) << Validate(p);
  p.explain_min_points = 2.1;
  EXPECT_EQ(Validate(p), "");
}

// A pair across an interruption is neither a stop nor a step, whatever the
// clocks did.
TEST(ScoringProperties, InterruptedPairsAreNeitherStopsNorSteps) {
  std::mt19937 rng(9);
  const Params params;
  int pairs = 0;
  for (int i = 0; i < kCases / 4; ++i) {
    RandomVm vm = MakeRandomVm(rng);
    for (size_t k = 1; k < vm.samples.size(); ++k) {
      ClockSample cur = vm.samples[k];
      cur.after_interruption = true;
      ASSERT_FALSE(StoppedBetween(vm.samples[k - 1], cur, params)) << "case " << i;
      ASSERT_EQ(StepBetween(vm.samples[k - 1], cur, 0, params), StepDirection::kNone);
      ++pairs;
    }
  }
  EXPECT_GT(pairs, 10000);
}

// |guest elapsed| < stopped_ratio x host elapsed is a stop in either
// direction (and never a step); beyond it, not a stop.
TEST(ScoringProperties, SmallMovementEitherWayIsAStop) {
  std::mt19937 rng(10);
  std::uniform_real_distribution<double> unit(0, 1);
  const Params params;
  for (int i = 0; i < kCases; ++i) {
    const double host_s = 1 + unit(rng) * 600;
    const double bound_s = params.stopped_ratio * host_s;
    const double sign = unit(rng) < 0.5 ? -1 : 1;
    ClockSample a;
    a.host_mono_ns = 5'000 * kSecond;
    a.host_real_ns = 1'767'225'600 * kSecond;
    a.guest_real_ns = a.host_real_ns;
    ClockSample b = a;
    b.host_mono_ns += static_cast<int64_t>(host_s * 1e9);
    b.host_real_ns += static_cast<int64_t>(host_s * 1e9);
    b.guest_real_ns += static_cast<int64_t>(sign * unit(rng) * bound_s * 0.999 * 1e9);
    b.offset_s = static_cast<double>(b.guest_real_ns - b.host_real_ns) / 1e9;
    ASSERT_TRUE(StoppedBetween(a, b, params)) << host_s << " " << b.offset_s;
    ASSERT_EQ(StepBetween(a, b, 0, params), StepDirection::kNone);
    ClockSample c = b;
    c.guest_real_ns = a.guest_real_ns + static_cast<int64_t>(sign * bound_s * 1.001 * 1e9);
    c.offset_s = static_cast<double>(c.guest_real_ns - c.host_real_ns) / 1e9;
    ASSERT_FALSE(StoppedBetween(a, c, params)) << host_s << " " << c.offset_s;
  }
}

// ReasonSet: a set of bits iterated in enum order, whatever the order of
// insertion; every reason can be held at once; out-of-range values are
// ignored rather than set.
TEST(ReasonSet, IteratesInEnumOrderWithoutDuplicates) {
  std::mt19937 rng(11);
  for (int round = 0; round < 200; ++round) {
    ReasonSet set;
    std::vector<Reason> inserted;
    const int n = static_cast<int>(rng() % (kReasonCount + 4));
    for (int k = 0; k < n; ++k) {
      const auto r = static_cast<Reason>(rng() % kReasonCount);
      set.insert(r);
      inserted.push_back(r);
    }
    std::sort(inserted.begin(), inserted.end());
    inserted.erase(std::unique(inserted.begin(), inserted.end()), inserted.end());
    const std::vector<Reason> got(set.begin(), set.end());
    EXPECT_EQ(got, inserted);
    EXPECT_EQ(set.size(), inserted.size());
    EXPECT_EQ(set.empty(), inserted.empty());
    for (int i = 0; i < kReasonCount; ++i) {
      const auto r = static_cast<Reason>(i);
      EXPECT_EQ(set.contains(r), std::binary_search(inserted.begin(), inserted.end(), r));
    }
    EXPECT_EQ(ReasonSet::FromBits(set.bits()), set);
  }
  ReasonSet all;
  for (int i = 0; i < kReasonCount; ++i) all.insert(static_cast<Reason>(i));
  EXPECT_EQ(all.size(), static_cast<size_t>(kReasonCount));
  EXPECT_EQ(*all.begin(), Reason::kOffsetElevated);
  EXPECT_EQ(ReasonSet::FromBits(~uint32_t{0}), all);  // bits beyond the last reason dropped
  all.erase(Reason::kOffsetElevated);
  EXPECT_EQ(*all.begin(), Reason::kOffsetHigh);
  ReasonSet none;
  none.insert(Reason::kCount);  // not a reason
  none.insert(static_cast<Reason>(-1));
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.begin(), none.end());
  const ReasonSet listed = {Reason::kStale, Reason::kOffsetHigh, Reason::kStale};
  EXPECT_EQ(std::vector<Reason>(listed.begin(), listed.end()),
            (std::vector<Reason>{Reason::kOffsetHigh, Reason::kStale}));
}

}  // namespace
}  // namespace vmtime::scoring
