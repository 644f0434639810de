#include "cli/completion.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace isoflop::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(EditDistance, CountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(EditDistance("list", "list"), 0);
  EXPECT_EQ(EditDistance("lst", "list"), 1);
  EXPECT_EQ(EditDistance("sumbit", "submit"), 2);
  EXPECT_EQ(EditDistance("", "abc"), 3);
}

TEST(NearestWords, OffersCloseWordsAndPrefixesNearestFirst) {
  const std::vector<std::string> verbs = {"submit", "plan",  "list",   "status",
                                          "cancel", "pause", "resume", "retry"};
  EXPECT_THAT(NearestWords("lst", verbs), ElementsAre("list"));
  EXPECT_THAT(NearestWords("stat", verbs), ElementsAre("status"));
  EXPECT_THAT(NearestWords("frobnicate", verbs), ElementsAre());
}

// A small tree shaped as main.cc's: a group that needs a subcommand, a leaf
// with a value flag, a flag and a positional, and a root flag falling through.
class CheckCommandLineTest : public ::testing::Test {
 protected:
  CheckCommandLineTest() {
    app_.name("isoflop");
    app_.require_subcommand(1);
    app_.fallthrough();
    app_.add_option("--address", value_);
    CLI::App* sweep = app_.add_subcommand("sweep", "sweeps");
    sweep->require_subcommand(1);
    CLI::App* list = sweep->add_subcommand("list", "list");
    list->add_option("--state", value_);
    list->add_flag("--wide", flag_);
    CLI::App* status = sweep->add_subcommand("status", "status");
    status->add_option("ID", value_);
  }
  absl::Status Check(std::vector<std::string> args) {
    return CheckCommandLine(app_, args);
  }
  CLI::App app_{"test"};
  std::string value_;
  bool flag_ = false;
};

TEST_F(CheckCommandLineTest, NamesAnUnknownCommandAndTheNearestOne) {
  const absl::Status s = Check({"sweep", "lst"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "unknown command 'lst' for 'isoflop sweep'; did you mean 'list'? "
            "(isoflop sweep --help lists them)");
}

TEST_F(CheckCommandLineTest, NamesAnUnknownFlagAndTheNearestOne) {
  const absl::Status s = Check({"sweep", "list", "--stat", "running"});
  EXPECT_EQ(s.message(),
            "unknown flag '--stat' for 'isoflop sweep list'; did you mean "
            "'--state'? (isoflop sweep list --help lists them)");
}

TEST_F(CheckCommandLineTest, AcceptsValuesPositionalsAndParentFlags) {
  EXPECT_TRUE(Check({"sweep", "list", "--state", "lst", "--wide"}).ok());
  EXPECT_TRUE(Check({"sweep", "list", "--state=x", "--address", "h:1"}).ok());
  EXPECT_TRUE(Check({"--address", "h:1", "sweep", "status", "sw-1"}).ok());
  EXPECT_TRUE(Check({"sweep", "frob", "--help"}).ok() == false);
  EXPECT_TRUE(Check({"sweep", "--help"}).ok());
}

TEST(BashCompletionScript, ListsEachCommandsSubcommandsAndFlags) {
  CLI::App app{"test"};
  app.name("isoflop");
  std::string v;
  CLI::App* sweep = app.add_subcommand("sweep", "sweeps");
  sweep->add_subcommand("list", "list")->add_option("--state", v);
  const std::string script = BashCompletionScript(app);
  EXPECT_THAT(script, HasSubstr("complete -o default -F _isoflop_complete "
                                "isoflop"));
  EXPECT_THAT(script, HasSubstr("'sweep') words='list --help -h'"));
  EXPECT_THAT(script, HasSubstr("'sweep list') words='--help -h --state'"));
  EXPECT_THAT(script, HasSubstr("value_flags=' --state '"));
}

}  // namespace
}  // namespace isoflop::cli
