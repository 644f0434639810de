#include "coordinator/service/rpc_latency.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(RpcLatency, HistogramBucketsAreCumulativePerMethod) {
  RpcLatency latency;
  EXPECT_THAT(latency.PrometheusText(),
              HasSubstr("# TYPE isoflop_rpc_duration_seconds histogram\n"));
  EXPECT_THAT(latency.PrometheusText(), Not(HasSubstr("_count")));
  latency.Record("ReportMetrics", 0.0002);
  latency.Record("ReportMetrics", 0.003);
  latency.Record("ReportMetrics", 30);  // past the last bound: only +Inf
  latency.Record("GetSweep", 0.001);    // on a bound: counted in it
  const std::string text = latency.PrometheusText();
  for (const char* line :
       {"isoflop_rpc_duration_seconds_bucket{method=\"ReportMetrics\","
        "le=\"0.0001\"} 0\n",
        "isoflop_rpc_duration_seconds_bucket{method=\"ReportMetrics\","
        "le=\"0.00025\"} 1\n",
        "isoflop_rpc_duration_seconds_bucket{method=\"ReportMetrics\","
        "le=\"0.005\"} 2\n",
        "isoflop_rpc_duration_seconds_bucket{method=\"ReportMetrics\","
        "le=\"2.5\"} 2\n",
        "isoflop_rpc_duration_seconds_bucket{method=\"ReportMetrics\","
        "le=\"+Inf\"} 3\n",
        "isoflop_rpc_duration_seconds_sum{method=\"ReportMetrics\"} "
        "30.0032\n",
        "isoflop_rpc_duration_seconds_count{method=\"ReportMetrics\"} 3\n",
        "isoflop_rpc_duration_seconds_bucket{method=\"GetSweep\","
        "le=\"0.0005\"} 0\n",
        "isoflop_rpc_duration_seconds_bucket{method=\"GetSweep\","
        "le=\"0.001\"} 1\n",
        "isoflop_rpc_duration_seconds_count{method=\"GetSweep\"} 1\n"}) {
    EXPECT_THAT(text, HasSubstr(line));
  }
}

}  // namespace
}  // namespace isoflop::coordinator
