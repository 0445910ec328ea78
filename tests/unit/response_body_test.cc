// ResponseBody: a body as a list of shared parts (exposition/response_body.h).
#include "exporter/exposition/response_body.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>

namespace vmtime::exposition {
namespace {

TEST(ResponseBody, PartsInOrderEmptyOnesLeftOut) {
  ResponseBody body;
  EXPECT_EQ(body.size(), 0u);
  EXPECT_EQ(body.Flatten(), "");
  body.Append(std::make_shared<const std::string>("ab"));
  body.Append(nullptr);
  body.Append(std::make_shared<const std::string>(""));
  body.Append(std::make_shared<const std::string>("cde"));
  EXPECT_EQ(body.parts().size(), 2u);
  EXPECT_EQ(body.size(), 5u);
  EXPECT_EQ(body.Flatten(), "abcde");
  const ResponseBody one("text");
  ASSERT_EQ(one.parts().size(), 1u);
  EXPECT_EQ(*one.parts()[0], "text");
}

// A part is shared, not copied: the body holds the same text its maker
// made, which stays valid as long as a body refers to it.
TEST(ResponseBody, SharesItsParts) {
  auto part = std::make_shared<const std::string>("piece");
  ResponseBody a, b;
  a.Append(part);
  b.Append(part);
  EXPECT_EQ(a.parts()[0].get(), b.parts()[0].get());
  part.reset();
  EXPECT_EQ(a.Flatten(), "piece");
}

// The list of a large body is mapped (page-aligned, its own mapping), not a
// block of malloc's arena; a small one is not (PartListAllocator).
TEST(ResponseBody, ALargeListOfPartsIsMapped) {
  const auto piece = std::make_shared<const std::string>("x");
  ResponseBody large;
  const size_t n =
      4 * PartListAllocator<ResponseBody::Part>::kMapFromBytes / sizeof(ResponseBody::Part);
  large.Reserve(n);
  for (size_t i = 0; i < n; ++i) large.Append(piece);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(large.parts().data()) % 4096, 0u);
  EXPECT_EQ(large.size(), n);
  EXPECT_EQ(large.Flatten(), std::string(n, 'x'));
  for (size_t i = 0; i < n; ++i) large.Append(piece);  // grows past the reservation
  EXPECT_EQ(large.Flatten(), std::string(2 * n, 'x'));
  EXPECT_EQ(piece.use_count(), static_cast<long>(2 * n + 1));
}

}  // namespace
}  // namespace vmtime::exposition
