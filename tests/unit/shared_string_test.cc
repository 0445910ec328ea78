#include "exporter/core/shared_string.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vmtime {
namespace {

TEST(SharedString, EmptyAllocatesNothingAndReadsAsEmpty) {
  SharedString s;
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.size(), 0u);
  EXPECT_STREQ(s.c_str(), "");
  EXPECT_EQ(s.use_count(), 0u);
  SharedString from_empty{std::string()};
  EXPECT_TRUE(from_empty.empty());
  EXPECT_EQ(from_empty.use_count(), 0u);
  EXPECT_EQ(s, from_empty);
}

TEST(SharedString, HoldsTheTextNulTerminated) {
  const std::string uuid = "0000002a-3ea5-4e00-8000-00000000002a";
  SharedString s(uuid);
  EXPECT_EQ(s.view(), uuid);
  EXPECT_EQ(s.str(), uuid);
  EXPECT_EQ(s.size(), uuid.size());
  EXPECT_STREQ(s.c_str(), uuid.c_str());
  // Embedded NULs and bytes above 127 are kept.
  const std::string odd("a\0b\xff", 4);
  SharedString t(odd);
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.view(), odd);
}

TEST(SharedString, CopiesShareOneTextAndCountIt) {
  SharedString a("web-1");
  EXPECT_EQ(a.use_count(), 1u);
  {
    SharedString b = a;
    SharedString c;
    c = b;
    EXPECT_EQ(a.use_count(), 3u);
    EXPECT_EQ(b.c_str(), a.c_str());  // the same bytes, not a copy of them
    EXPECT_EQ(c.c_str(), a.c_str());
  }
  EXPECT_EQ(a.use_count(), 1u);
  SharedString moved = std::move(a);
  EXPECT_EQ(moved.use_count(), 1u);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
  moved = moved;           // self-assignment keeps the text
  EXPECT_EQ(moved, "web-1");
  moved = SharedString("db-2");
  EXPECT_EQ(moved, "db-2");
  EXPECT_EQ(moved.use_count(), 1u);
}

TEST(SharedString, ComparesByContent) {
  SharedString a("alpha");
  SharedString a2(std::string("alpha"));
  SharedString b("beta");
  EXPECT_EQ(a, a2);  // different blocks, same text
  EXPECT_NE(a.c_str(), a2.c_str());
  EXPECT_LT(a, b);
  EXPECT_GT(b, a);
  EXPECT_TRUE(a == std::string("alpha"));
  EXPECT_TRUE(std::string("alpha") == a);
  EXPECT_TRUE(a == std::string_view("alpha"));
  EXPECT_TRUE(a == "alpha");
  EXPECT_TRUE(a < std::string("alpha2"));
  EXPECT_TRUE(SharedString() < a);
  EXPECT_EQ(std::string("x-") + a, "x-alpha");
  EXPECT_EQ(a + "-y", "alpha-y");
}

TEST(SharedString, KeysOrderedAndHashedTablesLookedUpWithoutACopy) {
  std::map<SharedString, int, std::less<>> ordered;
  ordered.emplace(SharedString("b"), 2);
  ordered.emplace(SharedString("a"), 1);
  EXPECT_EQ(ordered.begin()->first, "a");
  EXPECT_NE(ordered.find(std::string("b")), ordered.end());
  EXPECT_NE(ordered.find(std::string_view("a")), ordered.end());
  EXPECT_EQ(ordered.find(std::string("c")), ordered.end());

  std::unordered_map<SharedString, int, SharedStringHash, SharedStringEqual> hashed;
  hashed.emplace(SharedString("u1"), 1);
  hashed.emplace(SharedString("u2"), 2);
  EXPECT_EQ(hashed.find(std::string_view("u2"))->second, 2);
  EXPECT_EQ(hashed.find(std::string("u1"))->second, 1);
  EXPECT_EQ(hashed.find(std::string_view("u3")), hashed.end());
  EXPECT_EQ(SharedStringHash{}(SharedString("u1")), SharedStringHash{}(std::string_view("u1")));
}

TEST(SharedString, FormatsAndStreamsAsItsText) {
  SharedString s("vm-7");
  EXPECT_EQ(fmt::format("domain '{}'", s), "domain 'vm-7'");
  EXPECT_EQ(fmt::format("[{:>6}]", s), "[  vm-7]");
  std::ostringstream os;
  os << s;
  EXPECT_EQ(os.str(), "vm-7");
}

// Copies made and dropped on several threads at once (as the scheduler's
// workers, the poller and the HTTP threads do) leave the count exact.
TEST(SharedString, CountsStayExactAcrossThreads) {
  SharedString shared("0000002a-3ea5-4e00-8000-00000000002a");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&shared] {
      for (int i = 0; i < 20000; ++i) {
        SharedString copy = shared;
        std::vector<SharedString> more(3, copy);
        ASSERT_EQ(copy.view(), shared.view());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(shared.use_count(), 1u);
}

}  // namespace
}  // namespace vmtime
