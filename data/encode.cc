#include "data/encode.h"

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/token_file.h"
#include "data/sentencepiece_bpe.h"

namespace isoflop::data {
namespace fs = std::filesystem;

absl::Status Encode(const EncodeOptions& o) {
  if (o.dataset.empty())
    return absl::InvalidArgumentError("--dataset: required");
  if (o.text.empty() == o.input.empty()) {
    return absl::InvalidArgumentError(
        "give exactly one of --text (a prompt) and --input (a text file)");
  }
  if (!o.input.empty() && o.out.empty()) {
    return absl::InvalidArgumentError("--out: required with --input");
  }
  const fs::path model = fs::path(o.dataset) / "tokenizer.model";
  std::error_code ec;
  if (!fs::is_regular_file(model, ec)) {
    return absl::NotFoundError(absl::StrCat(
        "--dataset = ", o.dataset, ": no tokenizer.model there (datasets from ",
        "`isoflop data synth` have no tokenizer: pass token ids instead)"));
  }
  BpeEncoder encoder(model.string());
  if (!encoder.error().empty()) return absl::InternalError(encoder.error());
  if (!o.text.empty()) {
    std::printf("%s\n", absl::StrJoin(encoder.EncodeText(o.text), ",").c_str());
    return absl::OkStatus();
  }
  std::ifstream in(o.input, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("--input = ", o.input, ": cannot open"));
  }
  std::vector<int> ids;
  std::string line;
  int64_t lines = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    encoder.EncodeLine(line, &ids);
    ++lines;
  }
  if (ids.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--input = ", o.input, ": no text"));
  }
  const std::vector<uint32_t> tokens(ids.begin(), ids.end());
  RETURN_IF_ERROR(WriteTokenFile(
      o.out, static_cast<uint32_t>(encoder.vocab_size()), tokens));
  std::printf("{\"tokens\": %zu, \"lines\": %lld, \"bytes\": %llu}\n",
              tokens.size(), static_cast<long long>(lines),
              static_cast<unsigned long long>(fs::file_size(o.input)));
  return absl::OkStatus();
}

}  // namespace isoflop::data
