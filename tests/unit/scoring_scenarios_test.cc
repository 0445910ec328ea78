// Scenario table for the scoring engine: named situations from docs/scoring.md
// ("why guest clocks go wrong") and the seed cases of issue 12, each with
// the expected score range, band and the exact set of active reasons; every
// row is also checked against the explained-scores rule
// (tests/unit/scoring_explain.h). Histories are synthetic with fixed
// timestamps (tests/unit/scoring_history_builder.h); nothing reads a clock.
// Rows named seed_* are the seed cases: docs/scoring.md lists them
// with their band.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "scoring/score.h"
#include "tests/unit/scoring_explain.h"
#include "tests/unit/scoring_history_builder.h"

namespace vmtime::scoring {
namespace {

using testing::HistoryBuilder;

GuestSyncStatus Guest(SyncState state, std::optional<int> stratum,
                      LeapStatus leap = LeapStatus::kNormal) {
  GuestSyncStatus g;
  g.state = state;
  g.stratum = stratum;
  g.leap = leap;
  g.measured_mono_ns = HistoryBuilder::kMonoOrigin;
  return g;
}

HostReference Host(SyncState state, std::optional<int> stratum, std::optional<double> offset_s) {
  HostReference h;
  h.state = state;
  h.stratum = stratum;
  h.offset_s = offset_s;
  h.root_distance_s = 0.002;
  return h;
}

const GuestSyncStatus kGuestOk = Guest(SyncState::kSynchronised, 3);
const HostReference kHostOk = Host(SyncState::kSynchronised, 2, 0.0);

struct Scenario {
  std::string name;
  HistoryBuilder history;
  double now_after_last_s = 5;  // evaluation time relative to the newest sample
  bool agent_reachable = true;
  bool running = true;
  std::optional<GuestSyncStatus> guest = kGuestOk;
  std::optional<HostReference> host = kHostOk;
  double min_score = 0;
  double max_score = 100;
  Band band = Band::kGood;
  std::set<Reason> reasons;
  // Extra checks on the result (components, detector outputs).
  std::function<void(const ScoreResult&)> check;
  // Changes to the default Params for this row (a configuration variant);
  // set after the row is added.
  std::function<void(Params&)> tune = nullptr;
};

// gtest prints the scenario's name instead of its bytes.
void PrintTo(const Scenario& s, std::ostream* os) { *os << s.name; }

double Comp(const ScoreResult& r, Component c) { return r.components[static_cast<int>(c)]; }
bool Measured(const ScoreResult& r, Component c) { return r.measured[static_cast<int>(c)]; }

using R = Reason;
constexpr Band kGood = Band::kGood;
constexpr Band kDegraded = Band::kDegraded;
constexpr Band kBad = Band::kBad;

// The seed cases of issue 12: where an operator would put each situation.
void AddSeedCases(std::vector<Scenario>& v) {
  auto add = [&v](Scenario s) { v.push_back(std::move(s)); };
  add({.name = "seed_stepped_back_8min",
       .history = HistoryBuilder(0.001).Steady(20).Step(-480).Steady(10),
       .min_score = 20,
       .max_score = 20,
       .band = kBad,
       .reasons = {R::kStepBackward, R::kOffsetHigh, R::kOffsetCritical},
       .check = [](const ScoreResult& r) { EXPECT_EQ(r.steps_in_window.backward, 1); }});
  add({.name = "seed_stepped_forward_2min",
       .history = HistoryBuilder(0.001).Steady(20).Step(120).Steady(10),
       .min_score = 50,
       .max_score = 50,
       .band = kBad,
       .reasons = {R::kStepForward, R::kOffsetHigh},
       .check = [](const ScoreResult& r) { EXPECT_EQ(r.steps_in_window.forward, 1); }});
  add({.name = "seed_held_still",
       // Something resets the clock to the same second: it moves back and
       // forth by 0.2 s between samples. Stopped, never a backward step.
       .history = HistoryBuilder(0.001).Steady(20).Hold(4, 0.2),
       .min_score = 10,
       .max_score = 10,
       .band = kBad,
       .reasons = {R::kClockStopped, R::kOffsetHigh},
       .check = [](const ScoreResult& r) {
         EXPECT_TRUE(r.clock_stopped);
         EXPECT_EQ(r.stops_in_window, 4);
         EXPECT_EQ(r.steps_in_window.backward, 0);
         EXPECT_EQ(r.steps_in_window.forward, 0);
       }});
  add({.name = "held_still_from_mid_interval_2s_polls",
       // The lab's hold: the clock ran 0.9 s after a sample, was set back to
       // its whole second (0.5 s) and held. The first pair (guest +0.5 s over
       // 2 s) fell 1.5 s behind like a backward step; the stop that follows
       // says what it was.
       .history = HistoryBuilder(0.001, 2).Steady(30).HoldAfter(0.9, 0.5, 4, 0.1),
       .min_score = 10,
       .max_score = 10,
       .band = kBad,
       .reasons = {R::kClockStopped, R::kOffsetElevated},
       .check = [](const ScoreResult& r) {
         EXPECT_TRUE(r.clock_stopped);
         EXPECT_EQ(r.steps_in_window.backward, 0);
       }});
  add({.name = "uncertain_samples_seconds_apart_are_not_drift",
       // A loaded TCG host: five samples 2 s apart, each +-25 ms uncertain,
       // reading -25, +25, -25, +25, +25 ms. An unweighted fit says thousands
       // of ppm; the samples cannot resolve a slope that fine.
       .history = HistoryBuilder(0, 2)
                      .Uncertainty(0.025)
                      .Steady(1)
                      .Jitter(-0.025)
                      .Steady(1)
                      .Jitter(0.025)
                      .Steady(1)
                      .Jitter(-0.025)
                      .Steady(1)
                      .Jitter(0.025)
                      .Steady(1)
                      .Jitter(0.025),
       .now_after_last_s = 1,
       .min_score = 100,
       .max_score = 100,
       .band = kGood,
       .reasons = {},
       .check = [](const ScoreResult& r) { ASSERT_TRUE(r.drift.has_value()); }});
  add({.name = "offset_within_its_uncertainty_is_not_elevated",
       // +63 ms read with +-76 ms: the guest may be right on time.
       .history = HistoryBuilder(0.063).Uncertainty(0.076).Steady(8),
       .min_score = 99,
       .max_score = 100,
       .band = kGood,
       .reasons = {},
       .check = nullptr});
  add({.name = "seed_resumed_21s_behind",
       // Paused 20.9 s; the guest clock lost that time and nothing corrects it.
       .history = HistoryBuilder(0.001).Steady(20).Pause(20.9).Steady(6),
       .min_score = 88,
       .max_score = 89,
       .band = kDegraded,
       .reasons = {R::kOffsetElevated, R::kResumedBehind},
       .check = [](const ScoreResult& r) {
         EXPECT_FALSE(r.clock_stopped);
         EXPECT_EQ(r.stops_in_window, 0);
         EXPECT_EQ(r.steps_in_window.backward, 0);
         EXPECT_NEAR(*r.offset_used_s, -20.899, 1e-6);
       }});
  add({.name = "seed_guest_local_stratum_10",
       .history = HistoryBuilder(0.001).Steady(64),
       .guest = Guest(SyncState::kSynchronised, 10),
       .min_score = 89,
       .max_score = 89,
       .band = kDegraded,
       .reasons = {R::kStratumHigh},
       .check = [](const ScoreResult& r) { EXPECT_EQ(Comp(r, Component::kStratum), 0); }});
  add({.name = "seed_guest_unsynchronised",
       .history = HistoryBuilder(0.001).Steady(64),
       .guest = Guest(SyncState::kUnsynchronised, std::nullopt, LeapStatus::kUnsynchronised),
       .min_score = 75,
       .max_score = 75,
       .band = kDegraded,
       .reasons = {R::kUnsynchronised},
       .check = nullptr});
  // 2.3 s/day = 26.6 ppm, below drift_full_ratio (50 ppm): the drift costs
  // nothing; after ~5 h unsynchronised the guest is 0.5 s off, which
  // offset_elevated names.
  add({.name = "seed_drift_2_3s_per_day",
       .history = HistoryBuilder(0.5).Drift(2.3 / 86400).Steady(64),
       .min_score = 99,
       .max_score = 100,
       .band = kGood,
       .reasons = {R::kOffsetElevated},
       .check = [](const ScoreResult& r) {
         ASSERT_TRUE(r.drift.has_value());
         EXPECT_NEAR(r.drift->ratio, 2.3 / 86400, 1e-8);
         EXPECT_EQ(Comp(r, Component::kDrift), 1);
       }});
  // The configuration that makes it degraded: drift scored 1 up to 10 ppm
  // and 0 from 25 ppm (a fleet whose guests all run NTP).
  add({.name = "seed_drift_2_3s_per_day_strict_drift_config",
       .history = HistoryBuilder(0.5).Drift(2.3 / 86400).Steady(64),
       .min_score = 84,
       .max_score = 86,
       .band = kDegraded,
       .reasons = {R::kOffsetElevated, R::kDriftHigh},
       .check = [](const ScoreResult& r) { EXPECT_EQ(Comp(r, Component::kDrift), 0); }});
  v.back().tune = [](Params& p) {
    p.drift_full_ratio = 10e-6;
    p.drift_zero_ratio = 25e-6;
  };
  add({.name = "seed_offset_beyond_warning_31s",
       .history = HistoryBuilder(31).Steady(64),
       .min_score = 50,
       .max_score = 50,
       .band = kBad,
       .reasons = {R::kOffsetHigh},
       .check = nullptr});
}

// Pauses, holds and the explained-scores rule around them.
void AddInterruptionCases(std::vector<Scenario>& v) {
  auto add = [&v](Scenario s) { v.push_back(std::move(s)); };
  add({.name = "forward_step_after_resume",
       // Paused 10 minutes (guest clock frozen), resumed 10 min behind, then
       // the guest's daemon stepped it forward.
       .history = HistoryBuilder(0.001).Steady(20).Pause(600).Steady(1).Step(600).Steady(5),
       .min_score = 90,
       .max_score = 99,
       .band = kGood,
       .reasons = {R::kStepForward},
       .check = [](const ScoreResult& r) {
         EXPECT_EQ(r.steps_in_window.forward, 1);
         EXPECT_EQ(r.steps_in_window.backward, 0);
         EXPECT_EQ(r.stops_in_window, 0);  // the pause is neither a stop nor a step
         EXPECT_FALSE(r.clock_stopped);
       }});
  add({.name = "resumed_not_yet_corrected",
       .history = HistoryBuilder(0.001).Steady(20).Pause(600).Steady(2),
       .min_score = 20,
       .max_score = 20,
       .band = kBad,
       .reasons = {R::kOffsetHigh, R::kOffsetCritical, R::kResumedBehind},
       .check = [](const ScoreResult& r) { EXPECT_FALSE(r.clock_stopped); }});
  add({.name = "resumed_first_sample_is_not_stopped",
       .history = HistoryBuilder(0.001).Steady(20).Pause(20.9).Steady(1),
       .min_score = 88,
       .max_score = 89,
       .band = kDegraded,
       .reasons = {R::kOffsetElevated, R::kResumedBehind},
       .check = [](const ScoreResult& r) { EXPECT_FALSE(r.clock_stopped); }});
  add({.name = "resumed_behind_clears_once_caught_up",
       // Paused 0.5 s, then the guest's daemon slewed back to within 50 ms.
       .history = HistoryBuilder(0.001).Steady(20).Pause(0.5).Steady(2).Step(0.46).Steady(2),
       .min_score = 99,
       .max_score = 100,
       .band = kGood,
       .reasons = {},
       .check = nullptr});
  add({.name = "resumed_ahead_is_not_behind",
       // A guest 5 s ahead loses 2 s in a pause: still ahead, so only the
       // size of the offset is named.
       .history = HistoryBuilder(5).Steady(20).Pause(2).Steady(3),
       .min_score = 98,
       .max_score = 99,
       .band = kGood,
       .reasons = {R::kOffsetElevated},
       .check = nullptr});
  add({.name = "behind_before_a_short_migration_is_not_resumed_behind",
       // 5 s behind already; a migration loses 20 ms: the lag is not the
       // interruption's.
       .history = HistoryBuilder(-5).Steady(20).Pause(0.02).Steady(3),
       .min_score = 97,
       .max_score = 98,
       .band = kGood,
       .reasons = {R::kOffsetElevated},
       .check = nullptr});
  add({.name = "pause_missed_by_the_collector_reads_as_stop",
       // No lifecycle event: 10 min without the guest clock advancing is,
       // by the definition, a stopped clock.
       .history = HistoryBuilder(0.001).Steady(20).Pause(600, false).Steady(1),
       .min_score = 10,
       .max_score = 10,
       .band = kBad,
       .reasons = {R::kClockStopped, R::kOffsetHigh, R::kOffsetCritical},
       .check = [](const ScoreResult& r) { EXPECT_TRUE(r.clock_stopped); }});
  add({.name = "clock_stopped",
       .history = HistoryBuilder(0.001).Steady(20).Stopped(1),
       .min_score = 5,
       .max_score = 10,
       .band = kBad,
       .reasons = {R::kClockStopped, R::kOffsetElevated},
       .check = [](const ScoreResult& r) {
         EXPECT_TRUE(r.clock_stopped);
         EXPECT_EQ(r.steps_in_window.forward + r.steps_in_window.backward, 0);
         EXPECT_LT(Comp(r, Component::kStability), 1);
       }});
  add({.name = "clock_stopped_for_two_minutes",
       .history = HistoryBuilder(0.001).Steady(20).Stopped(8),
       .min_score = 0,
       .max_score = 10,
       .band = kBad,
       .reasons = {R::kClockStopped, R::kOffsetHigh},
       .check = [](const ScoreResult& r) {
         EXPECT_TRUE(r.clock_stopped);
         EXPECT_EQ(Comp(r, Component::kStability), 0);  // repeated
       }});
  add({.name = "clock_stopped_on_paused_domain_not_gated",
       // The stop is still named (it lowers stability), but the domain is
       // paused now: no gate, not "stopped now".
       .history = HistoryBuilder(0.001).Steady(20).Stopped(1),
       .running = false,
       .min_score = 90,
       .max_score = 91,
       .band = kGood,
       .reasons = {R::kClockStopped, R::kOffsetElevated},
       .check = [](const ScoreResult& r) { EXPECT_FALSE(r.clock_stopped); }});
  add({.name = "clock_stopped_earlier_in_the_window",
       // Stopped for two intervals, then running again 30 s behind: the
       // stops stay named while they are in the drift window; no gate.
       .history = HistoryBuilder(0.001).Steady(20).Stopped(2).Steady(10),
       .min_score = 80,
       .max_score = 85,
       .band = kDegraded,
       .reasons = {R::kClockStopped, R::kOffsetElevated},
       .check = [](const ScoreResult& r) {
         EXPECT_FALSE(r.clock_stopped);
         EXPECT_EQ(r.stops_in_window, 2);
       }});
  add({.name = "held_clock_moving_back_by_a_tenth_is_stopped",
       // The example: "went backwards" by 0.1 s over 15 s of host time.
       .history = HistoryBuilder(0.001).Steady(20).Hold(2, 0.1),
       .min_score = 10,
       .max_score = 10,
       .band = kBad,
       .reasons = {R::kClockStopped, R::kOffsetElevated},
       .check = [](const ScoreResult& r) {
         EXPECT_TRUE(r.clock_stopped);
         EXPECT_EQ(r.steps_in_window.backward, 0);
       }});
}

std::vector<Scenario> Scenarios() {
  std::vector<Scenario> v;
  AddSeedCases(v);
  AddInterruptionCases(v);
  auto add = [&v](Scenario s) { v.push_back(std::move(s)); };

  add({.name = "healthy",
       .history = HistoryBuilder(0.002).Steady(64),
       .min_score = 99.9,
       .max_score = 100,
       .reasons = {},
       .check = [](const ScoreResult& r) {
         ASSERT_TRUE(r.drift.has_value());
         EXPECT_NEAR(r.drift->ratio, 0, 1e-9);
         EXPECT_FALSE(r.clock_stopped);
         EXPECT_NEAR(*r.offset_used_s, 0.002, 1e-9);
         for (bool m : r.measured) EXPECT_TRUE(m);
       }});
  add({.name = "missing_optional_data",
       // Not collected is left out of the mean, not charged.
       .history = HistoryBuilder(0.002).Steady(64),
       .guest = std::nullopt,
       .host = std::nullopt,
       .min_score = 99.9,
       .max_score = 100,
       .reasons = {},
       .check = [](const ScoreResult& r) {
         EXPECT_FALSE(Measured(r, Component::kSyncState));
         EXPECT_FALSE(Measured(r, Component::kStratum));
         EXPECT_FALSE(Measured(r, Component::kHostReference));
         EXPECT_TRUE(Measured(r, Component::kOffset));
       }});
  add({.name = "fresh_boot_one_second_off_no_guest_status",
       .history = HistoryBuilder(-0.9).Steady(2),
       .guest = std::nullopt,
       .min_score = 98,
       .max_score = 100,
       .reasons = {R::kOffsetElevated},
       .check = [](const ScoreResult& r) { EXPECT_FALSE(r.drift.has_value()); }});
  add({.name = "offset_40ms_is_kept",
       .history = HistoryBuilder(0.04).Steady(64),
       .min_score = 99.9,
       .max_score = 100,
       .reasons = {},
       .check = nullptr});
  add({.name = "offset_60ms_is_elevated",
       .history = HistoryBuilder(-0.06).Steady(64),
       .min_score = 99.9,
       .max_score = 100,
       .reasons = {R::kOffsetElevated},
       .check = nullptr});
  add({.name = "offset_29s",
       .history = HistoryBuilder(29).Steady(64),
       .min_score = 80,
       .max_score = 88,
       .band = kDegraded,
       .reasons = {R::kOffsetElevated},
       .check = nullptr});
  add({.name = "offset_minus_31s",
       .history = HistoryBuilder(-31).Steady(64),
       .min_score = 50,
       .max_score = 50,
       .band = kBad,
       .reasons = {R::kOffsetHigh},
       .check = nullptr});
  add({.name = "offset_just_under_5min",
       .history = HistoryBuilder(299).Steady(64),
       .min_score = 50,
       .max_score = 50,
       .band = kBad,
       .reasons = {R::kOffsetHigh},
       .check = nullptr});
  add({.name = "offset_5min",
       .history = HistoryBuilder(301).Steady(64),
       .min_score = 15,
       .max_score = 20,
       .band = kBad,
       .reasons = {R::kOffsetHigh, R::kOffsetCritical},
       .check = nullptr});
  add({.name = "offset_15min",  // beyond 15 min by more than the sample's uncertainty
       .history = HistoryBuilder(-900.01).Steady(64),
       .min_score = 15,
       .max_score = 20,
       .band = kBad,
       .reasons = {R::kOffsetHigh, R::kOffsetCritical},
       .check = [](const ScoreResult& r) { EXPECT_EQ(Comp(r, Component::kOffset), 0); }});
  add({.name = "utc_offset_used_when_host_offset_known",
       .history = HistoryBuilder(0.5).Steady(64),
       .host = Host(SyncState::kSynchronised, 2, 40.0),  // host 40 s ahead of UTC
       .min_score = 50,
       .max_score = 50,
       .band = kBad,
       .reasons = {R::kOffsetHigh},
       .check = [](const ScoreResult& r) { EXPECT_NEAR(*r.offset_used_s, 40.5, 1e-9); }});
  add({.name = "utc_offset_cancels_host_offset",
       .history = HistoryBuilder(40).Steady(64),
       .host = Host(SyncState::kSynchronised, 2, -39.97),  // guest follows a slow host
       .min_score = 99,
       .max_score = 100,
       .reasons = {},
       .check = [](const ScoreResult& r) { EXPECT_NEAR(*r.offset_used_s, 0.03, 1e-9); }});
  add({.name = "step_backward_2s",
       .history = HistoryBuilder(0.001).Steady(20).Step(-2).Steady(10),
       .min_score = 90,
       .max_score = 98,
       .reasons = {R::kStepBackward, R::kOffsetElevated},
       .check = [](const ScoreResult& r) { EXPECT_LE(Comp(r, Component::kStability), 0.34); }});
  add({.name = "step_backward_8min_then_corrected",
       .history = HistoryBuilder(0.001).Steady(20).Step(-480).Steady(10).Step(480).Steady(5),
       .min_score = 94,
       .max_score = 96,
       .reasons = {R::kStepBackward, R::kStepForward},
       .check = [](const ScoreResult& r) {
         EXPECT_EQ(Comp(r, Component::kStability), 0);
         ASSERT_TRUE(r.drift.has_value());
         EXPECT_NEAR(r.drift->ratio, 0, 1e-6);  // the steps do not read as drift
       }});
  add({.name = "repeated_steps",
       .history = HistoryBuilder(0.001)
                      .Steady(5)
                      .Step(2)
                      .Steady(3)
                      .Step(-2)
                      .Steady(3)
                      .Step(2)
                      .Steady(3)
                      .Step(-2)
                      .Steady(3),
       .min_score = 90,
       .max_score = 96,
       .reasons = {R::kStepForward, R::kStepBackward},
       .check = [](const ScoreResult& r) {
         EXPECT_EQ(r.steps_in_window.forward, 2);
         EXPECT_EQ(r.steps_in_window.backward, 2);
         EXPECT_EQ(Comp(r, Component::kStability), 0);
       }});
  add({.name = "step_older_than_drift_window_ignored",
       .history = HistoryBuilder(0.5).Steady(10).Step(-0.49).Steady(250),  // 250 * 15 s > 1 h
       .min_score = 99.9,
       .max_score = 100,
       .reasons = {},
       .check = [](const ScoreResult& r) {
         EXPECT_EQ(r.steps_in_window.backward, 0);
         EXPECT_EQ(Comp(r, Component::kStability), 1);
       }});
  add({.name = "long_history_5s_polls_with_step",  // 700 samples in the window: no stack buffer
       .history = HistoryBuilder(0.001, 5).Drift(20e-6).Steady(350).Step(-3).Steady(350),
       .min_score = 90,
       .max_score = 98,
       .reasons = {R::kStepBackward, R::kOffsetElevated},
       .check = [](const ScoreResult& r) {
         EXPECT_EQ(r.steps_in_window.backward, 1);
         EXPECT_EQ(r.steps_in_window.forward, 0);
         ASSERT_TRUE(r.drift.has_value());
         EXPECT_NEAR(r.drift->ratio, 20e-6, 1e-8);
       }});
  add({.name = "drift_2_3s_per_day_fresh_from_sync",
       // 16 minutes of 26.6 ppm from offset 0: 25 ms, still within what a
       // kept guest shows, and the drift is below drift_full_ratio: nothing
       // lost, nothing to name yet.
       .history = HistoryBuilder(0).Drift(2.3 / 86400).Steady(64),
       .min_score = 99.5,
       .max_score = 100,
       .reasons = {},
       .check = [](const ScoreResult& r) {
         ASSERT_TRUE(r.drift.has_value());
         EXPECT_NEAR(r.drift->ratio, 2.3 / 86400, 1e-8);
         EXPECT_EQ(Comp(r, Component::kDrift), 1);
       }});
  add({.name = "drift_500ppm",
       .history = HistoryBuilder(0).Drift(500e-6).Steady(240),
       .min_score = 84,
       .max_score = 86,
       .band = kDegraded,
       .reasons = {R::kDriftHigh, R::kOffsetElevated},
       .check = [](const ScoreResult& r) {
         ASSERT_TRUE(r.drift.has_value());
         EXPECT_NEAR(r.drift->ratio, 500e-6, 1e-8);
         EXPECT_LT(Comp(r, Component::kDrift), 0.01);
       }});
  add({.name = "millisecond_noise_on_short_history_is_not_drift",
       .history = HistoryBuilder(0)
                      .Steady(1)
                      .Jitter(-0.003)
                      .Steady(1)
                      .Jitter(0.003)
                      .Steady(1)
                      .Jitter(-0.003)
                      .Steady(1)
                      .Jitter(0.003),
       .min_score = 99,
       .max_score = 100,
       .reasons = {},
       .check = [](const ScoreResult& r) {
         ASSERT_TRUE(r.drift.has_value());
         EXPECT_GT(r.drift->ratio, 50e-6);          // raw slope is above drift_full_ratio...
         EXPECT_EQ(Comp(r, Component::kDrift), 1);  // ...but not significant
       }});
  add({.name = "guest_stratum_4",
       .history = HistoryBuilder(0.001).Steady(64),
       .guest = Guest(SyncState::kSynchronised, 4),
       .min_score = 99.9,
       .max_score = 100,
       .reasons = {},
       .check = nullptr});
  add({.name = "guest_stratum_6",
       .history = HistoryBuilder(0.001).Steady(64),
       .guest = Guest(SyncState::kSynchronised, 6),
       .min_score = 95,
       .max_score = 98,
       .reasons = {R::kStratumHigh},
       .check = nullptr});
  add({.name = "guest_stratum_16",
       .history = HistoryBuilder(0.001).Steady(64),
       .guest = Guest(SyncState::kSynchronised, 16),
       .min_score = 75,
       .max_score = 75,
       .band = kDegraded,
       .reasons = {R::kUnsynchronised},
       .check = nullptr});
  add({.name = "guest_unsynchronised_state_only",
       .history = HistoryBuilder(0.001).Steady(64),
       .guest = Guest(SyncState::kUnsynchronised, std::nullopt),
       .min_score = 75,
       .max_score = 75,
       .band = kDegraded,
       .reasons = {R::kUnsynchronised},
       .check = [](const ScoreResult& r) { EXPECT_EQ(Comp(r, Component::kSyncState), 0); }});
  add({.name = "guest_leap_unsynchronised",
       .history = HistoryBuilder(0.001).Steady(64),
       .guest = Guest(SyncState::kUnknown, 3, LeapStatus::kUnsynchronised),
       .min_score = 75,
       .max_score = 75,
       .band = kDegraded,
       .reasons = {R::kUnsynchronised},
       .check = nullptr});
  add({.name = "guest_leap_insert_pending",
       .history = HistoryBuilder(0.001).Steady(64),
       .guest = Guest(SyncState::kSynchronised, 2, LeapStatus::kInsertSecond),
       .min_score = 99.9,
       .max_score = 100,
       .reasons = {R::kLeapPending},
       .check = nullptr});
  add({.name = "guest_status_unknown",
       // Collected, but the daemon's state is unknown (e.g. no daemon found):
       // charged and named; the missing stratum is left out.
       .history = HistoryBuilder(0.001).Steady(64),
       .guest = Guest(SyncState::kUnknown, std::nullopt, LeapStatus::kUnknown),
       .min_score = 91,
       .max_score = 92,
       .reasons = {R::kGuestSyncUnknown},
       .check = [](const ScoreResult& r) {
         EXPECT_DOUBLE_EQ(Comp(r, Component::kSyncState), 0.5);
         EXPECT_FALSE(Measured(r, Component::kStratum));
       }});
  add({.name = "guest_synchronised_without_stratum",
       .history = HistoryBuilder(0.001).Steady(64),
       .guest = Guest(SyncState::kSynchronised, std::nullopt),
       .min_score = 99.9,
       .max_score = 100,
       .reasons = {},
       .check = [](const ScoreResult& r) { EXPECT_FALSE(Measured(r, Component::kStratum)); }});
  add({.name = "stale_samples",
       .history = HistoryBuilder(0.001).Steady(64),
       .now_after_last_s = 100,  // 6.7 poll intervals
       .min_score = 93,
       .max_score = 95,
       .reasons = {R::kStale},
       .check = [](const ScoreResult& r) { EXPECT_DOUBLE_EQ(r.freshness_age_s, 100); }});
  add({.name = "stale_and_agent_unreachable",
       .history = HistoryBuilder(0.001).Steady(64),
       .now_after_last_s = 600,
       .agent_reachable = false,
       .min_score = 50,
       .max_score = 50,
       .band = kBad,
       .reasons = {R::kStale, R::kAgentUnreachable},
       .check = [](const ScoreResult& r) { EXPECT_EQ(Comp(r, Component::kFreshness), 0); }});
  add({.name = "agent_unreachable_with_fresh_sample",
       .history = HistoryBuilder(0.001).Steady(64),
       .agent_reachable = false,
       .min_score = 99,
       .max_score = 100,
       .reasons = {R::kAgentUnreachable},
       .check = nullptr});
  add({.name = "host_unsynchronised",
       .history = HistoryBuilder(0.001).Steady(64),
       .host = Host(SyncState::kUnsynchronised, std::nullopt, std::nullopt),
       .min_score = 94,
       .max_score = 96,
       .reasons = {R::kHostUnsynchronised},
       .check = nullptr});
  add({.name = "host_local_clock_stratum_10",
       .history = HistoryBuilder(0.001).Steady(64),
       .host = Host(SyncState::kSynchronised, 10, 0.0),
       .min_score = 94,
       .max_score = 96,
       .reasons = {R::kHostUnsynchronised},
       .check = nullptr});
  add({.name = "host_stratum_6",
       .history = HistoryBuilder(0.001).Steady(64),
       .host = Host(SyncState::kSynchronised, 6, 0.0),
       .min_score = 98,
       .max_score = 99,
       .reasons = {R::kHostStratumHigh},
       .check = [](const ScoreResult& r) {
         EXPECT_NEAR(Comp(r, Component::kHostReference), 4.0 / 6.0, 1e-12);
       }});
  add({.name = "host_state_unknown",
       .history = HistoryBuilder(0.001).Steady(64),
       .host = Host(SyncState::kUnknown, std::nullopt, std::nullopt),
       .min_score = 99.9,
       .max_score = 100,
       .reasons = {},
       .check = [](const ScoreResult& r) {
         EXPECT_FALSE(Measured(r, Component::kHostReference));
       }});
  add({.name = "no_data",
       .history = HistoryBuilder(0),
       .agent_reachable = true,
       .min_score = 30,
       .max_score = 30,
       .band = kBad,
       .reasons = {R::kNoData},
       .check = [](const ScoreResult& r) {
         EXPECT_FALSE(r.offset_used_s.has_value());
         EXPECT_FALSE(r.drift.has_value());
       }});
  add({.name = "no_data_agent_unreachable_nothing_optional",
       .history = HistoryBuilder(0),
       .agent_reachable = false,
       .guest = std::nullopt,
       .host = std::nullopt,
       .min_score = 0,
       .max_score = 0,
       .band = kBad,
       .reasons = {R::kNoData, R::kAgentUnreachable},
       .check = nullptr});
  return v;
}

class ScoringScenario : public ::testing::TestWithParam<Scenario> {};

TEST_P(ScoringScenario, ScoreBandAndReasons) {
  const Scenario& s = GetParam();
  VmInput in;
  in.samples = s.history.samples();
  in.running = s.running;
  in.agent_reachable = s.agent_reachable;
  in.guest = s.guest;
  in.host = s.host;
  in.now_mono_ns = s.history.MonoAfterLast(s.now_after_last_s);
  in.poll_interval_s = 15;
  Params params;
  if (s.tune) s.tune(params);
  ASSERT_EQ(Validate(params), "");
  const ScoreResult r = Score(in, params);

  EXPECT_GE(r.score, s.min_score - 1e-9);
  EXPECT_LE(r.score, s.max_score + 1e-9);
  EXPECT_EQ(BandName(r.band), BandName(s.band));
  std::set<Reason> got(r.reasons.begin(), r.reasons.end());
  std::string got_names;
  for (Reason x : r.reasons) got_names += std::string(ReasonName(x)) + " ";
  EXPECT_EQ(got, s.reasons) << "reasons: " << got_names;
  EXPECT_EQ(got.size(), r.reasons.size()) << "duplicate reasons";
  EXPECT_TRUE(std::is_sorted(r.reasons.begin(), r.reasons.end()));
  for (double c : r.components) {
    EXPECT_GE(c, 0);
    EXPECT_LE(c, 1);
  }
  EXPECT_EQ(testing::Unexplained(r, params), "");
  if (s.check) s.check(r);
  if (::testing::Test::HasFailure()) {
    std::string comps;
    for (int i = 0; i < kComponentCount; ++i) {
      comps += std::string(ComponentName(static_cast<Component>(i))) + "=" +
               (r.measured[i] ? std::to_string(r.components[i]) : std::string("-")) + " ";
    }
    ADD_FAILURE() << s.name << ": score " << r.score << " components " << comps;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, ScoringScenario, ::testing::ValuesIn(Scenarios()),
                         [](const ::testing::TestParamInfo<Scenario>& info) {
                           return info.param.name;
                         });

TEST(ScoringScenarioTable, HasAtLeast25DistinctCases) {
  const auto v = Scenarios();
  std::set<std::string> names;
  for (const auto& s : v) names.insert(s.name);
  EXPECT_GE(v.size(), 25u);
  EXPECT_EQ(names.size(), v.size());
}

// Without guest status and host reference (the default exporter
// configuration has guest_status off), the seed cases that do not need them
// land in the same bands.
TEST(ScoringScenarioTable, SeedBandsHoldWithoutOptionalData) {
  for (const Scenario& s : Scenarios()) {
    const bool default_guest =
        s.guest && s.guest->state == kGuestOk.state && s.guest->stratum == kGuestOk.stratum;
    if (s.name.rfind("seed_", 0) != 0 || !default_guest) continue;
    VmInput in;
    in.samples = s.history.samples();
    in.now_mono_ns = s.history.MonoAfterLast(s.now_after_last_s);
    in.agent_reachable = true;
    Params params;
    if (s.tune) s.tune(params);
    const ScoreResult r = Score(in, params);
    EXPECT_EQ(BandName(r.band), BandName(s.band)) << s.name << " score " << r.score;
    EXPECT_EQ(testing::Unexplained(r, params), "") << s.name;
  }
}

}  // namespace
}  // namespace vmtime::scoring
