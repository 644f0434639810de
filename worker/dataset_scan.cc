#include "worker/dataset_scan.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace isoflop::worker {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr uintmax_t kMaxMetaBytes = 1 << 20;

bool DatasetNameOk(const std::string& name) {
  return !name.empty() && name.size() <= 140 && name[0] != '.' &&
         std::all_of(name.begin(), name.end(), [](unsigned char c) {
           return c > 0x20 && c < 0x7f && c != '/';
         });
}

// The unsigned integer at `key` within [min, max]; nullopt-like absence is
// handled by the caller (`required`).
absl::Status ReadCount(const json& meta, const char* key, uint64_t min,
                       uint64_t max, bool required, uint64_t* out) {
  const auto it = meta.find(key);
  if (it == meta.end() || it->is_null()) {
    if (!required) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "meta.json: ", key, " is missing: must be an integer >= ", min));
  }
  if (!it->is_number_unsigned() || it->get<uint64_t>() < min ||
      it->get<uint64_t>() > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("meta.json: ", key, " = ", it->dump().substr(0, 64),
                     ": must be an integer in [", min, ", ", max, "]"));
  }
  *out = it->get<uint64_t>();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::WorkerDataset> ParseDatasetMeta(const std::string& name,
                                                   const std::string& text) {
  const json meta = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!meta.is_object()) {
    return absl::InvalidArgumentError(
        "meta.json: not a JSON object: must be {\"vocab_size\": V, "
        "\"train_tokens\": N, \"val_tokens\": M, ...}");
  }
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  uint64_t vocab = 0, train = 0, val = 0, documents = 0, bytes = 0;
  if (absl::Status s =
          ReadCount(meta, "vocab_size", 2, std::numeric_limits<uint32_t>::max(),
                    /*required=*/true, &vocab);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          ReadCount(meta, "train_tokens", 1, kMax, /*required=*/true, &train);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          ReadCount(meta, "val_tokens", 0, kMax, /*required=*/true, &val);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ReadCount(meta, "documents", 0, kMax,
                                 /*required=*/false, &documents);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          ReadCount(meta, "bytes", 0, kMax, /*required=*/false, &bytes);
      !s.ok()) {
    return s;
  }
  v1::WorkerDataset d;
  d.set_name(name);
  d.set_vocab_size(static_cast<uint32_t>(vocab));
  d.set_train_tokens(train);
  d.set_val_tokens(val);
  d.set_documents(documents);
  d.set_bytes(bytes);
  return d;
}

DatasetScan ScanDatasets(const fs::path& data_dir) {
  DatasetScan out;
  std::error_code ec;
  fs::directory_iterator it(data_dir, ec);
  if (ec) {
    out.skipped.push_back(absl::StrCat(data_dir.string(), ": ", ec.message(),
                                       ": no datasets reported"));
    return out;
  }
  std::vector<fs::path> dirs;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::error_code is_dir_ec;
    if (it->is_directory(is_dir_ec)) dirs.push_back(it->path());
  }
  std::sort(dirs.begin(), dirs.end());
  for (const fs::path& dir : dirs) {
    const std::string name = dir.filename().string();
    const std::string where = dir.string();
    // A dataset being written (`isoflop-data prepare` / `import` stage into
    // NAME.tmp-XXXXXX or .NAME.import-PID and rename when done) is not one yet.
    if (name.find(".tmp-") != std::string::npos) continue;
    if (!DatasetNameOk(name)) {
      if (!name.empty() && name[0] != '.') {
        out.skipped.push_back(absl::StrCat(
            where, ": not a dataset name (1 to 140 printable bytes, no '/')"));
      }
      continue;
    }
    const fs::path meta_path = dir / "meta.json";
    std::error_code size_ec;
    const uintmax_t size = fs::file_size(meta_path, size_ec);
    if (size_ec) {
      out.skipped.push_back(
          absl::StrCat(where, ": meta.json: ", size_ec.message()));
      continue;
    }
    if (size > kMaxMetaBytes) {
      out.skipped.push_back(absl::StrCat(where, ": meta.json: ", size,
                                         " bytes: must be <= ", kMaxMetaBytes));
      continue;
    }
    std::ifstream in(meta_path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      out.skipped.push_back(absl::StrCat(where, ": meta.json: unreadable"));
      continue;
    }
    absl::StatusOr<v1::WorkerDataset> d = ParseDatasetMeta(name, text.str());
    if (!d.ok()) {
      out.skipped.push_back(absl::StrCat(where, ": ", d.status().message()));
      continue;
    }
    std::error_code train_ec;
    if (!fs::is_regular_file(dir / "train.bin", train_ec)) {
      out.skipped.push_back(absl::StrCat(where, ": train.bin: missing"));
      continue;
    }
    if (out.datasets.size() == kMaxReportedDatasets) {
      out.skipped.push_back(absl::StrCat(where, ": more than ",
                                         kMaxReportedDatasets,
                                         " datasets: not reported"));
      continue;
    }
    out.datasets.push_back(*std::move(d));
  }
  return out;
}

}  // namespace isoflop::worker
