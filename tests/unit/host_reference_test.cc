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

}  // namespace
}  // namespace vmtime
