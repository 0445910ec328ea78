// MemoryTrimmer: trims on a poke, at most once per interval (fake clock).
#include "exporter/core/memory_trimmer.h"

#include <gtest/gtest.h>

#include <atomic>

namespace vmtime {
namespace {

TEST(MemoryTrimmerTest, TrimsOnAPokeAtMostOncePerInterval) {
  FakeClock clock;
  std::atomic<int> calls{0};
  MemoryTrimmer t(clock, 10'000'000'000, [&] { ++calls; });
  EXPECT_TRUE(t.WaitQuiet(5000));
  EXPECT_EQ(calls.load(), 0);  // nothing freed yet: no trim
  t.Poke();
  ASSERT_TRUE(t.WaitQuiet(5000));
  EXPECT_EQ(calls.load(), 1);
  clock.Advance(9'999'999'999);
  t.Poke();
  t.Poke();
  ASSERT_TRUE(t.WaitQuiet(5000));
  EXPECT_EQ(calls.load(), 1);  // within the interval
  clock.Advance(1);
  t.Poke();
  ASSERT_TRUE(t.WaitQuiet(5000));
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(t.trims(), 2u);
}

TEST(MemoryTrimmerTest, DefaultTrimRunsAndDestructionJoins) {
  FakeClock clock;
  {
    MemoryTrimmer t(clock);
    t.Poke();
    ASSERT_TRUE(t.WaitQuiet(5000));
    EXPECT_EQ(t.trims(), 1u);
    t.Poke();  // left waiting: the destructor must still return
  }
  SUCCEED();
}

}  // namespace
}  // namespace vmtime
