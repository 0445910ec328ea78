// Host reference from PTP (store/host_reference_ptp.h): one test per branch
// of the rule with hand-made ptp4l states, and the store carrying it into
// Snapshot::ptp_host_reference.
#include "exporter/store/host_reference_ptp.h"

#include <gtest/gtest.h>

#include "exporter/store/store.h"

namespace vmtime {
namespace {

using scoring::SyncState;

PtpObservation Slave(double offset_s, PtpPortState state = PtpPortState::kSlave) {
  PtpObservation o;
  o.clock_identity = "021122.fffe.334455";
  o.grandmaster_identity = "0a0b0c.fffe.0d0e0f";
  o.grandmaster_clock_class = 248;
  o.steps_removed = 1;
  o.offset_from_master_s = offset_s;
  o.mean_path_delay_s = 4e-6;
  PtpPortObservation p;
  p.port_number = 1;
  p.state = state;
  o.ports.push_back(p);
  return o;
}

PtpObservation Grandmaster(int clock_class) {
  PtpObservation o = Slave(0, PtpPortState::kMaster);
  o.grandmaster_identity = o.clock_identity;
  o.grandmaster_clock_class = clock_class;
  o.steps_removed = 0;
  return o;
}

TEST(HostReferenceFromPtp, SlaveWithSaneOffsetIsSynchronised) {
  const auto h = HostReferenceFromPtp(Slave(-2e-6));
  EXPECT_EQ(h.source, "ptp");
  EXPECT_EQ(h.state, SyncState::kSynchronised);
  EXPECT_EQ(h.stratum, 2);
  EXPECT_DOUBLE_EQ(*h.offset_s, -2e-6);
  EXPECT_DOUBLE_EQ(*h.root_distance_s, 4e-6);
}

TEST(HostReferenceFromPtp, SlaveBeyondTheOffsetBoundIsNot) {
  EXPECT_EQ(HostReferenceFromPtp(Slave(kPtpMaxSlaveOffsetS)).state, SyncState::kSynchronised);
  const auto h = HostReferenceFromPtp(Slave(-2 * kPtpMaxSlaveOffsetS));
  EXPECT_EQ(h.state, SyncState::kUnsynchronised);
  EXPECT_FALSE(h.offset_s.has_value());
  EXPECT_FALSE(h.stratum.has_value());
}

TEST(HostReferenceFromPtp, OtherPortStatesAreUnsynchronised) {
  for (auto st : {PtpPortState::kListening, PtpPortState::kUncalibrated, PtpPortState::kFaulty,
                  PtpPortState::kPassive, PtpPortState::kUnknown, PtpPortState::kMaster}) {
    EXPECT_EQ(HostReferenceFromPtp(Slave(0, st)).state, SyncState::kUnsynchronised)
        << PtpPortStateName(st);
  }
}

TEST(HostReferenceFromPtp, GrandmasterAbsentIsUnsynchronised) {
  PtpObservation o = Slave(1e-6);
  o.gm_present = false;
  EXPECT_EQ(HostReferenceFromPtp(o).state, SyncState::kUnsynchronised);
  o.gm_present = true;
  EXPECT_EQ(HostReferenceFromPtp(o).state, SyncState::kSynchronised);
}

TEST(HostReferenceFromPtp, GrandmasterNeedsATraceableClockClass) {
  const auto locked = HostReferenceFromPtp(Grandmaster(6));
  EXPECT_EQ(locked.state, SyncState::kSynchronised);
  EXPECT_EQ(locked.stratum, 1);
  EXPECT_FALSE(locked.offset_s.has_value());  // PTP does not say how far GM time is from UTC
  EXPECT_EQ(HostReferenceFromPtp(Grandmaster(7)).state, SyncState::kSynchronised);
  EXPECT_EQ(HostReferenceFromPtp(Grandmaster(52)).state, SyncState::kUnsynchronised);
  EXPECT_EQ(HostReferenceFromPtp(Grandmaster(248)).state, SyncState::kUnsynchronised);
  PtpObservation listening = Grandmaster(6);
  listening.ports[0].state = PtpPortState::kListening;
  EXPECT_EQ(HostReferenceFromPtp(listening).state, SyncState::kUnsynchronised);
}

TEST(HostReferenceFromPtp, StoreCarriesItWhilePtp4lAnswers) {
  Config config;
  config.collectors[CollectorId::kPtp].enabled = true;
  Store store(config);
  Observations obs;
  obs.ptp = Slave(3e-6);
  store.Apply(obs);
  auto snap = store.Build(1, 1);
  EXPECT_TRUE(snap->ptp_enabled);
  ASSERT_TRUE(snap->ptp_up);
  ASSERT_TRUE(snap->ptp_host_reference.has_value());
  EXPECT_EQ(snap->ptp_host_reference->state, SyncState::kSynchronised);
  store.MarkFailed("ptp");
  snap = store.Build(2, 2);
  EXPECT_FALSE(snap->ptp_up);
  EXPECT_FALSE(snap->ptp.has_value());  // no stale port state once ptp4l stops answering
  EXPECT_FALSE(snap->ptp_host_reference.has_value());
}

}  // namespace
}  // namespace vmtime
