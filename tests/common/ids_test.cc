#include "common/ids.h"

#include "gtest/gtest.h"

namespace isoflop {
namespace {

TEST(StableHashHex, KnownFnv1aVectors) {
  EXPECT_EQ(StableHashHex(""), "cbf29ce484222325");
  EXPECT_EQ(StableHashHex("a"), "af63dc4c8601ec8c");
}

TEST(MakeId, PrefixAndTruncatedHash) {
  EXPECT_EQ(MakeId("sw", "a", 6), "sw-af63dc");
  EXPECT_NE(MakeId("sw", "a"), MakeId("sw", "b"));
}

}  // namespace
}  // namespace isoflop
