// Numbers people read (common/readable.h).
#include "common/readable.h"

#include <cmath>

#include "gtest/gtest.h"

namespace isoflop {
namespace {

TEST(Sig, ThreeSignificantFiguresByDefaultAndFullPrecisionAtZero) {
  EXPECT_EQ(Sig(0.34731265761033453), "0.347");
  EXPECT_EQ(Sig(2143.8637880335505), "2.14e+03");
  EXPECT_EQ(Sig(3.6000000000000005, 4), "3.6");
  EXPECT_EQ(Sig(0.34731265761033453, 0), "0.34731265761033453");
  EXPECT_EQ(Sig(INFINITY), "inf");
  EXPECT_EQ(Sig(std::nan("")), "nan");
}

TEST(Count, WholeCountsWithKMBT) {
  EXPECT_EQ(Count(6795600349), "6.8B");
  EXPECT_EQ(Count(875), "875");
  EXPECT_EQ(Count(22449546.841756582), "22.4M");
  EXPECT_EQ(Count(999999), "1M");  // rounded first: never "1e+03K"
  EXPECT_EQ(Count(1.4e12), "1.4T");
  EXPECT_EQ(Count(1500), "1.5K");
  EXPECT_EQ(Count(6795600349, 0), "6795600349");
  EXPECT_EQ(Count(2e16), "2e+16");  // beyond 1000T
}

TEST(FactorInterval, ScaleIntervalsAreTimesOrDivideFactors) {
  EXPECT_EQ(FactorInterval(100, 50, 150), " (95% \u00d7/\u00f7 2)");
  EXPECT_EQ(FactorInterval(100, 80, 300), " (95% \u00d7/\u00f7 3)");
  EXPECT_EQ(FactorInterval(7.6e8, 0, 7.629e8),
            " (95% 0 .. 7.63e+08: reaches 0, not a factor)");
}

TEST(Intervals, ZeroWidthIsNeverPrintedAsAnInterval) {
  EXPECT_EQ(LinearInterval(0.3, 0.3).find("0.3 .. 0.3"), std::string::npos);
  EXPECT_NE(LinearInterval(0.3, 0.3).find("zero width"), std::string::npos);
  EXPECT_NE(FactorInterval(5, 5, 5).find("zero width"), std::string::npos);
  EXPECT_EQ(LinearInterval(0.0904, 246.1), " (95% 0.0904 .. 246)");
}

}  // namespace
}  // namespace isoflop
