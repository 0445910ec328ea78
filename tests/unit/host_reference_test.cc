// Host reference: the store's decision about the host's own sync state
// (store/host_reference.h), one test per branch with fake observations, and
// the store using it for Snapshot::host_reference.
#include "exporter/store/host_reference.h"

#include <gtest/gtest.h>
#include <sys/timex.h>

#include "exporter/store/store.h"

namespace vmtime {
namespace {

using scoring::SyncState;

ChronyObservation Tracking(int stratum, int leap_status) {
  ChronyObservation o;
  o.tracking.reference_id = 0x7F000001;
  o.tracking.stratum = stratum;
  o.tracking.leap_status = leap_status;
  o.tracking.system_time_offset_s = 0.002;
  o.tracking.root_delay_s = 0.010;
  o.tracking.root_dispersion_s = 0.001;
  return o;
}

// A kernel view: `state` is adjtimex's return value.
TimexObservation Kernel(int state, int status, double max_error_s) {
  TimexObservation t;
  t.state = state;
  t.status = status;
  t.max_error_s = max_error_s;
  t.synchronised = state != TIME_ERROR && (status & STA_UNSYNC) == 0;
  return t;
}

TEST(HostReference, ChronySynchronisedKeepsStratumOffsetAndRootDistance) {
  auto h = DecideHostReference(Tracking(3, 0), std::nullopt);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->source, "chrony");
  EXPECT_EQ(h->state, SyncState::kSynchronised);
  EXPECT_EQ(h->stratum, 3);
  EXPECT_DOUBLE_EQ(*h->offset_s, 0.002);
  EXPECT_DOUBLE_EQ(*h->root_distance_s, 0.006);  // 0.010 / 2 + 0.001
}

TEST(HostReference, ChronyUnsynchronisedByLeapOrStratum) {
  EXPECT_EQ(HostReferenceFromChrony(Tracking(3, 3)).state, SyncState::kUnsynchronised);
  EXPECT_EQ(HostReferenceFromChrony(Tracking(0, 0)).state, SyncState::kUnsynchronised);
  EXPECT_EQ(HostReferenceFromChrony(Tracking(16, 0)).state, SyncState::kUnsynchronised);
  EXPECT_EQ(HostReferenceFromChrony(Tracking(15, 0)).state, SyncState::kSynchronised);
  EXPECT_EQ(HostReferenceFromChrony(Tracking(1, 1)).state, SyncState::kSynchronised);  // leap ins
  EXPECT_EQ(HostReferenceFromChrony(Tracking(16, 0)).source, "chrony");
}

TEST(HostReference, ChronyWhenItAnswersWhateverTheKernelSays) {
  auto h = DecideHostReference(Tracking(2, 0), Kernel(TIME_ERROR, STA_UNSYNC, 16));
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->source, "chrony");
  EXPECT_EQ(h->state, SyncState::kSynchronised);
  h = DecideHostReference(Tracking(2, 3), Kernel(TIME_OK, STA_PLL, 0.01));
  EXPECT_EQ(h->source, "chrony");
  EXPECT_EQ(h->state, SyncState::kUnsynchronised);
}

TEST(HostReference, KernelIgnoresStaUnsyncWhenMaxErrorIsSmall) {
  // chronyd without rtcsync: STA_UNSYNC stays set, adjtimex returns
  // TIME_ERROR, but maxerror is kept small: synchronised.
  auto h = DecideHostReference(std::nullopt, Kernel(TIME_ERROR, STA_UNSYNC | STA_NANO, 0.4));
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->source, "kernel");
  EXPECT_EQ(h->state, SyncState::kSynchronised);
  EXPECT_FALSE(h->stratum.has_value());
  EXPECT_FALSE(h->offset_s.has_value());
  EXPECT_FALSE(h->root_distance_s.has_value());
}

TEST(HostReference, KernelUnsynchronisedAtMaxErrorSixteenSeconds) {
  EXPECT_EQ(HostReferenceFromKernel(Kernel(TIME_ERROR, STA_UNSYNC, 16)).state,
            SyncState::kUnsynchronised);
  EXPECT_EQ(HostReferenceFromKernel(Kernel(TIME_OK, 0, 16)).state, SyncState::kUnsynchronised);
  EXPECT_EQ(HostReferenceFromKernel(Kernel(TIME_OK, 0, 15.9)).state, SyncState::kSynchronised);
}

TEST(HostReference, KernelClockErrorsOtherThanStaUnsyncCount) {
  EXPECT_EQ(HostReferenceFromKernel(Kernel(TIME_ERROR, STA_CLOCKERR, 0.1)).state,
            SyncState::kUnsynchronised);
  EXPECT_EQ(HostReferenceFromKernel(Kernel(TIME_ERROR, STA_UNSYNC | STA_CLOCKERR, 0.1)).state,
            SyncState::kUnsynchronised);
  // TIME_ERROR with STA_UNSYNC clear: a PPS condition (signal lost).
  EXPECT_EQ(HostReferenceFromKernel(Kernel(TIME_ERROR, STA_PPSFREQ, 0.1)).state,
            SyncState::kUnsynchronised);
  EXPECT_EQ(HostReferenceFromKernel(Kernel(TIME_INS, STA_INS, 0.1)).state,
            SyncState::kSynchronised);
}

TEST(HostReference, NothingObservedIsNoReference) {
  EXPECT_FALSE(DecideHostReference(std::nullopt, std::nullopt).has_value());
}

TEST(HostReference, StoreFallsBackToTheKernelWhenChronydStopsAnswering) {
  Config config;
  Store store(config);
  Observations obs;
  obs.chrony = Tracking(2, 0);
  obs.timex = Kernel(TIME_ERROR, STA_UNSYNC, 0.2);
  store.Apply(obs);
  auto snap = store.Build(1'000'000'000, 1'700'000'000'000'000'000);
  ASSERT_TRUE(snap->host_reference.has_value());
  EXPECT_EQ(snap->host_reference->source, "chrony");
  EXPECT_EQ(snap->host_reference->stratum, 2);

  store.MarkFailed("chrony");
  snap = store.Build(2'000'000'000, 1'700'000'001'000'000'000);
  ASSERT_TRUE(snap->host_reference.has_value());
  EXPECT_EQ(snap->host_reference->source, "kernel");
  EXPECT_EQ(snap->host_reference->state, SyncState::kSynchronised);

  Observations unsynced;
  unsynced.timex = Kernel(TIME_ERROR, STA_UNSYNC, 16);
  store.Apply(unsynced);
  snap = store.Build(3'000'000'000, 1'700'000'002'000'000'000);
  EXPECT_EQ(snap->host_reference->source, "kernel");
  EXPECT_EQ(snap->host_reference->state, SyncState::kUnsynchronised);
}

NtpdObservation Ntpd(int stratum, int leap) {
  NtpdObservation n;
  n.stratum = stratum;
  n.leap = leap;
  n.offset_s = 0.004;  // server - host: the host is 4 ms behind
  n.root_delay_s = 0.020;
  n.root_dispersion_s = 0.003;
  return n;
}

TEST(HostReference, NtpdRuleAndSign) {
  const auto h = HostReferenceFromNtpd(Ntpd(3, 0));
  EXPECT_EQ(h.source, "ntpd");
  EXPECT_EQ(h.state, SyncState::kSynchronised);
  EXPECT_EQ(h.stratum, 3);
  EXPECT_DOUBLE_EQ(*h.offset_s, -0.004);  // host - UTC
  EXPECT_DOUBLE_EQ(*h.root_distance_s, 0.013);
  EXPECT_EQ(HostReferenceFromNtpd(Ntpd(3, 3)).state, SyncState::kUnsynchronised);
  EXPECT_EQ(HostReferenceFromNtpd(Ntpd(16, 0)).state, SyncState::kUnsynchronised);
  EXPECT_EQ(HostReferenceFromNtpd(Ntpd(0, 0)).state, SyncState::kUnsynchronised);
}

TEST(HostReference, TimesyncdFlagFileAndMessage) {
  TimesyncdObservation t;
  auto h = HostReferenceFromTimesyncd(t);
  EXPECT_EQ(h.source, "timesyncd");
  EXPECT_EQ(h.state, SyncState::kUnsynchronised);
  EXPECT_FALSE(h.stratum.has_value());
  EXPECT_FALSE(h.offset_s.has_value());
  t.synchronised = true;  // flag file only (no D-Bus)
  EXPECT_EQ(HostReferenceFromTimesyncd(t).state, SyncState::kSynchronised);
  t.leap = 0;
  t.stratum = 2;
  t.offset_s = -0.010;  // server - host: host 10 ms ahead
  t.delay_s = 0.002;
  t.root_delay_s = 0.004;
  t.root_dispersion_s = 0.001;
  h = HostReferenceFromTimesyncd(t);
  EXPECT_EQ(h.stratum, 3);
  EXPECT_DOUBLE_EQ(*h.offset_s, 0.010);
  EXPECT_DOUBLE_EQ(*h.root_distance_s, 0.004);
  t.leap = 3;
  EXPECT_EQ(HostReferenceFromTimesyncd(t).state, SyncState::kUnsynchronised);
}

TEST(HostReference, SelectionFollowsTheOrderAndSkipsAbsentSources) {
  std::vector<HostReferenceCandidate> c = {
      {"chrony", std::nullopt},
      {"ntpd", HostReferenceFromNtpd(Ntpd(16, 3))},
      {"timesyncd", HostReferenceFromTimesyncd(TimesyncdObservation{})},
      {"kernel", HostReferenceFromKernel(Kernel(TIME_OK, 0, 0.1))},
  };
  auto h = SelectHostReference({"chrony", "ntpd", "timesyncd", "ptp", "kernel"}, c);
  ASSERT_TRUE(h.has_value());
  // A present but unsynchronised ntpd decides: the kernel does not overrule it.
  EXPECT_EQ(h->source, "ntpd");
  EXPECT_EQ(h->state, SyncState::kUnsynchronised);
  h = SelectHostReference({"kernel", "ntpd"}, c);
  EXPECT_EQ(h->source, "kernel");
  h = SelectHostReference({"timesyncd"}, c);
  EXPECT_EQ(h->source, "timesyncd");
  // A name without a candidate (ptp not collected) is skipped.
  h = SelectHostReference({"ptp", "kernel"}, c);
  EXPECT_EQ(h->source, "kernel");
  EXPECT_FALSE(SelectHostReference({"chrony", "ptp"}, c).has_value());
  EXPECT_FALSE(SelectHostReference({}, c).has_value());
}

TEST(HostReference, StoreUsesTheConfiguredOrderAndFallsBackWhenNtpdStops) {
  Config config;
  config.collectors[CollectorId::kNtpd].enabled = true;
  config.collectors[CollectorId::kTimesyncd].enabled = true;
  Store store(config);
  Observations obs;
  obs.ntpd = Ntpd(2, 0);
  obs.timex = Kernel(TIME_OK, 0, 0.1);
  store.Apply(obs);
  auto snap = store.Build(1'000'000'000, 1'700'000'000'000'000'000);
  ASSERT_TRUE(snap->host_reference.has_value());
  EXPECT_EQ(snap->host_reference->source, "ntpd");
  EXPECT_TRUE(snap->ntpd_up);
  store.MarkFailed("ntpd");
  snap = store.Build(2'000'000'000, 1'700'000'001'000'000'000);
  EXPECT_FALSE(snap->ntpd_up);
  EXPECT_EQ(snap->host_reference->source, "kernel");

  Observations ts;
  ts.timesyncd = TimesyncdObservation{};
  ts.timesyncd->synchronised = true;
  store.Apply(ts);
  snap = store.Build(3'000'000'000, 1'700'000'002'000'000'000);
  EXPECT_EQ(snap->host_reference->source, "timesyncd");

  config.host.reference_order = {"kernel", "timesyncd"};
  store.SetConfig(config);
  snap = store.Build(4'000'000'000, 1'700'000'003'000'000'000);
  EXPECT_EQ(snap->host_reference->source, "kernel");
  // Disabling a collector forgets its section.
  config.host.reference_order = {"timesyncd"};
  config.collectors[CollectorId::kTimesyncd].enabled = false;
  store.SetConfig(config);
  snap = store.Build(5'000'000'000, 1'700'000'004'000'000'000);
  EXPECT_FALSE(snap->host_reference.has_value());
}

}  // namespace
}  // namespace vmtime
