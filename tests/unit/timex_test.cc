#include <gtest/gtest.h>

#include "exporter/collectors/timex/timex_collector.h"

namespace vmtime {
namespace {

TEST(Timex, NanoBitDecidesOffsetUnitAndFrequencyBecomesRatio) {
  struct timex tx {};
  tx.status = STA_PLL | STA_NANO;
  tx.offset = 1500;      // ns
  tx.freq = 65536 * 12;  // 12 ppm
  tx.maxerror = 250000;  // us
  tx.esterror = 100;     // us
  tx.tick = 10000;       // us
  tx.tai = 37;
  auto o = ConvertTimex(tx, TIME_OK, 42);
  EXPECT_DOUBLE_EQ(o.offset_s, 1.5e-6);
  EXPECT_DOUBLE_EQ(o.frequency_ratio, 12e-6);
  EXPECT_DOUBLE_EQ(o.max_error_s, 0.25);
  EXPECT_DOUBLE_EQ(o.est_error_s, 1e-4);
  EXPECT_DOUBLE_EQ(o.tick_s, 0.01);
  EXPECT_EQ(o.tai_offset_s, 37);
  EXPECT_TRUE(o.synchronised);
  EXPECT_EQ(o.measured_real_ns, 42);

  tx.status = STA_PLL;  // microseconds
  EXPECT_DOUBLE_EQ(ConvertTimex(tx, TIME_OK, 0).offset_s, 1.5e-3);
}

TEST(Timex, UnsyncBitOrTimeErrorMeansUnsynchronised) {
  struct timex tx {};
  tx.status = STA_UNSYNC;
  EXPECT_FALSE(ConvertTimex(tx, TIME_OK, 0).synchronised);
  tx.status = 0;
  EXPECT_FALSE(ConvertTimex(tx, TIME_ERROR, 0).synchronised);
}

TEST(Timex, KvmArtifactIsFlagged) {
  struct timex tx {};
  tx.status = STA_NANO;
  tx.offset = 1L << 32;
  EXPECT_TRUE(ConvertTimex(tx, TIME_OK, 0).kvm_offset_artifact);
  tx.offset = (1L << 32) + 1;
  EXPECT_FALSE(ConvertTimex(tx, TIME_OK, 0).kvm_offset_artifact);
}

TEST(Timex, CollectorReportsSyscallFailure) {
  TimexCollector c([](struct timex*) {
    errno = EPERM;
    return -1;
  });
  FakeClock clock;
  Observations out;
  CollectContext ctx{clock, 0, {}};
  Status st = c.Collect(ctx, out);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("adjtimex"), std::string::npos);
  EXPECT_FALSE(out.timex);
}

TEST(Timex, RealKernelAnswers) {
  TimexCollector c;
  FakeClock clock;
  Observations out;
  CollectContext ctx{clock, 0, {}};
  ASSERT_TRUE(c.Collect(ctx, out).ok());
  ASSERT_TRUE(out.timex);
  EXPECT_GT(out.timex->tick_s, 0);
  EXPECT_EQ(out.timex->measured_real_ns, clock.RealtimeNs());
}

}  // namespace
}  // namespace vmtime
