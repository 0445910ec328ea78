// MemoryTrimmer: trims on a poke, at most once per interval (fake clock).
#include "exporter/core/memory_trimmer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace vmtime {
namespace {

TEST(MemoryTrimmerTest, TrimsOnAPokeAtMostOncePerIntervalAndOwesTheRest) {
  FakeClock clock;
  std::atomic<int> calls{0};
  MemoryTrimmer t(clock, 10'000'000'000, [&] { ++calls; });
  t.Poke();
  ASSERT_TRUE(t.WaitQuiet(5000));
  EXPECT_EQ(calls.load(), 1);
  EXPECT_FALSE(t.pending());
  clock.Advance(9'999'999'999);
  t.Poke();
  t.Poke();
  ASSERT_TRUE(t.WaitQuiet(5000));
  EXPECT_EQ(calls.load(), 1);  // within the interval: owed, not done
  EXPECT_TRUE(t.pending());
  // Due now: done without another poke (the thread looks again at least
  // once a second).
  clock.Advance(1);
  for (int i = 0; i < 500 && calls.load() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(calls.load(), 2);
  ASSERT_TRUE(t.WaitQuiet(5000));
  EXPECT_FALSE(t.pending());
  EXPECT_EQ(t.trims(), 2u);
  // Nothing poked since: nothing owed, no trim however long it waits.
  clock.Advance(60'000'000'000);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(calls.load(), 2);
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
