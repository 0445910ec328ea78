#include "exporter/http/worker_stack.h"

#include <alloca.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace vmtime {
namespace {

// Resident pages of [low, high) (page-aligned), by mincore(2).
size_t ResidentPages(uintptr_t low, uintptr_t high) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  low = low / page * page;
  high = high / page * page;
  if (high <= low) return 0;
  std::vector<unsigned char> vec((high - low) / page);
  if (mincore(reinterpret_cast<void*>(low), high - low, vec.data()) != 0) return 0;
  size_t n = 0;
  for (unsigned char v : vec) n += v & 1U;
  return n;
}

// Touches `bytes` of stack below its caller, then returns.
__attribute__((noinline)) void GoDeep(size_t bytes) {
  std::vector<char> unused;  // keeps the frame from being a leaf
  char* area = static_cast<char*>(alloca(bytes));
  std::memset(area, 1, bytes);
  asm volatile("" : : "r"(area) : "memory");
}

struct Result {
  size_t released = 0;
  size_t deep_before = 0;  // resident pages more than 16 KiB below the frame, before
  size_t deep_after = 0;
  // Resident pages below the page under the kept part, after: the release
  // keeps no more than kStackKeepBelowBytes (the page just below may come
  // back with the calls that count).
  size_t below_kept_after = 0;
  size_t near_after = 0;  // resident pages of the current frame and the kept part, after
};

Result RunOnAThread(size_t depth) {
  Result r;
  std::thread t([&r, depth] {
    GoDeep(depth);
    volatile char here = 0;
    const auto sp = reinterpret_cast<uintptr_t>(&here);
    pthread_attr_t attr;
    pthread_getattr_np(pthread_self(), &attr);
    void* addr = nullptr;
    size_t size = 0;
    pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    const auto low = reinterpret_cast<uintptr_t>(addr);
    r.deep_before = ResidentPages(low, sp - 16 * 1024);
    r.released = ReleaseStackBelow();
    r.deep_after = ResidentPages(low, sp - 16 * 1024);
    r.below_kept_after = ResidentPages(low, sp - kStackKeepBelowBytes - 4096);
    // The page of the current frame and the kept bytes below it.
    r.near_after = ResidentPages(sp - kStackKeepBelowBytes, sp + 4096);
  });
  t.join();
  return r;
}

TEST(WorkerStack, PagesADeepCallLeftBehindGoBackToTheKernel) {
  const Result r = RunOnAThread(256 * 1024);
  EXPECT_GE(r.deep_before, 50u);  // the deep call's pages were resident
  EXPECT_GT(r.released, 200u * 1024);
  EXPECT_EQ(r.deep_after, 0u);
  EXPECT_EQ(r.below_kept_after, 0u);
  EXPECT_GE(r.near_after, 1u);  // what the current frames use stays
}

TEST(WorkerStack, AThreadCanGoDeepAgainAfterARelease) {
  std::thread t([] {
    for (int i = 0; i < 3; ++i) {
      GoDeep(128 * 1024);
      EXPECT_GT(ReleaseStackBelow(), 0u);
    }
  });
  t.join();
}

TEST(WorkerStack, NothingBelowTheKeptPartIsNothingReleased) {
  std::thread t([] {
    // A keep larger than the whole stack releases nothing and does not fail.
    EXPECT_EQ(ReleaseStackBelow(size_t{1} << 40), 0u);
  });
  t.join();
}

}  // namespace
}  // namespace vmtime
