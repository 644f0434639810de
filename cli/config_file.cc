#include "cli/config_file.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace isoflop::cli {
namespace {

// Keeps the first error with its position; later ones are usually consequences.
class FirstErrorCollector final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (error_.empty())
      error_ = absl::StrCat(line + 1, ":", column + 1, ": ", message);
  }
  void AddWarning(int, int, const std::string&) override {}
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

}  // namespace

absl::StatusOr<v1::SweepConfig> ParseSweepConfig(const std::string& text,
                                                 const std::string& name) {
  FirstErrorCollector errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  v1::SweepConfig config;
  if (!parser.ParseFromString(text, &config)) {
    std::string where = errors.error().empty() ? "1:1: not a valid SweepConfig"
                                               : errors.error();
    return absl::InvalidArgumentError(absl::StrCat(name, ":", where));
  }
  return config;
}

absl::StatusOr<v1::SweepConfig> LoadSweepConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot read the sweep config"));
  std::stringstream text;
  text << in.rdbuf();
  return ParseSweepConfig(text.str(), path);
}

}  // namespace isoflop::cli
