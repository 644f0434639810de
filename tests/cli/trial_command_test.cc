// `isoflop trial eval` takes a dataset name, never a path (issue 18, defect
// 10): a path is refused before any request, naming --data and the rule.
#include "cli/trial_command.h"

#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::cli {
namespace {

using ::testing::HasSubstr;

TEST(EvalTrial, RefusesAPathBeforeAnyRequest) {
  std::ostringstream out, err;
  CommandContext ctx{.out = &out, .err = &err};
  // Port 9 (discard) on loopback: nothing answers, so only a refusal made
  // before connecting gives INVALID_ARGUMENT.
  const TrialHttp http{"http://127.0.0.1:9", "token", ""};
  for (const std::string data :
       {"/etc/shadow", "held-out.txt/..", "../data/x", "a/b", ".x", ""}) {
    absl::Status s = EvalTrial(ctx, http, "tr-1", data);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << data << s;
    EXPECT_THAT(s.message(),
                HasSubstr(absl::StrCat("--data = \"", data,
                                       "\": must be a dataset name")));
  }
  EXPECT_EQ(out.str(), "");
}

}  // namespace
}  // namespace isoflop::cli
