// Property tests of the scoring engine over randomised inputs (fixed seeds,
// bounded counts, std::mt19937): the score stays in 0..100, never rises as
// |offset| grows with all else fixed, is deterministic, and does not depend
// on the origin of the timestamps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "scoring/score.h"

namespace vmtime::scoring {
namespace {

constexpr int kCases = 2000;
constexpr int64_t kSecond = 1'000'000'000;

// A random VM: history with drift, noise, steps, stops and gaps; random
// optional guest and host status; random reachability and evaluation time.
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
  for (int i = 0; i < n; ++i) {
    int64_t dt = static_cast<int64_t>(interval_s * uniform(0.9, 1.1) * 1e9);
    if (chance(0.03)) dt += static_cast<int64_t>(uniform(0, 3600) * 1e9);  // gap
    mono += dt;
    real += dt;
    if (!chance(0.04)) guest += dt + static_cast<int64_t>(drift * static_cast<double>(dt));
    if (chance(0.04)) guest += static_cast<int64_t>(uniform(-600, 600) * 1e9);  // step
    ClockSample s;
    s.host_mono_ns = mono;
    s.host_real_ns = real;
    s.guest_real_ns = guest + static_cast<int64_t>(uniform(-0.002, 0.002) * 1e9);  // noise
    s.offset_s = static_cast<double>(s.guest_real_ns - s.host_real_ns) / 1e9;
    s.uncertainty_s = uniform(0, 0.01);
    vm.samples.push_back(s);
  }
  VmInput& in = vm.input;
  in.running = chance(0.9);
  in.agent_reachable = chance(0.8);
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
  EXPECT_EQ(a.reasons, b.reasons);
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
    for (size_t k = 1; k < window.size(); ++k) {
      switch (StepBetween(window[k - 1], window[k], drift ? drift->ratio : 0, params)) {
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
  }
  EXPECT_GT(long_windows, 10);
}

}  // namespace
}  // namespace vmtime::scoring
