// Host reference: the store's decision about the host's own sync state.
#include "exporter/store/host_reference.h"

#include <gtest/gtest.h>

namespace vmtime {
namespace {

TEST(ChronyHostReference, FromTracking) {
  ChronyObservation o;
  o.tracking.reference_id = 0x7F000001;
  o.tracking.stratum = 3;
  o.tracking.leap_status = 0;
  o.tracking.system_time_offset_s = 0.002;
  o.tracking.root_delay_s = 0.010;
  o.tracking.root_dispersion_s = 0.001;
  auto h = HostReferenceFromChrony(o);
  EXPECT_EQ(h.state, scoring::SyncState::kSynchronised);
  EXPECT_EQ(h.stratum, 3);
  EXPECT_DOUBLE_EQ(*h.offset_s, 0.002);
  EXPECT_DOUBLE_EQ(*h.root_distance_s, 0.006);
  o.tracking.leap_status = 3;
  EXPECT_EQ(HostReferenceFromChrony(o).state, scoring::SyncState::kUnsynchronised);
  o.tracking.leap_status = 0;
  o.tracking.reference_id = 0;
  EXPECT_EQ(HostReferenceFromChrony(o).state, scoring::SyncState::kUnsynchronised);
  o.tracking.reference_id = 1;
  o.tracking.stratum = 16;
  EXPECT_EQ(HostReferenceFromChrony(o).state, scoring::SyncState::kUnsynchronised);
}

}  // namespace
}  // namespace vmtime
