#include "coordinator/service/dataset_check.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace isoflop::coordinator {
namespace {

// Lists in messages stay short: the first few workers and datasets.
constexpr size_t kMaxListed = 8;

bool NameOk(const std::string& name) {
  return !name.empty() && name.size() <= 140 && name[0] != '.' &&
         std::all_of(name.begin(), name.end(), [](unsigned char c) {
           return c > 0x20 && c < 0x7f && c != '/';
         });
}

std::string Printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 64)) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

// "wk-a holds kjv (vocab 512), tiny (vocab 256); wk-b holds none".
std::string Holdings(const std::vector<LeaseTable::LiveDatasets>& live) {
  std::vector<std::string> parts;
  for (const LeaseTable::LiveDatasets& w : live) {
    if (parts.size() == kMaxListed) {
      parts.push_back(
          absl::StrCat("and ", live.size() - kMaxListed, " more workers"));
      break;
    }
    if (!w.reports_datasets) {
      parts.push_back(absl::StrCat(w.worker_id, " reports none"));
      continue;
    }
    std::vector<std::string> names;
    for (const v1::WorkerDataset& d : w.datasets) {
      if (names.size() == kMaxListed) {
        names.push_back(
            absl::StrCat("and ", w.datasets.size() - kMaxListed, " more"));
        break;
      }
      names.push_back(absl::StrCat(d.name(), " (vocab ", d.vocab_size(), ")"));
    }
    parts.push_back(
        absl::StrCat(w.worker_id, w.draining ? " (draining)" : "", " holds ",
                     names.empty() ? "none" : absl::StrJoin(names, ", ")));
  }
  return absl::StrJoin(parts, "; ");
}

}  // namespace

absl::Status ValidateWorkerDatasets(
    const google::protobuf::RepeatedPtrField<v1::WorkerDataset>& datasets) {
  if (datasets.size() > kMaxWorkerDatasets) {
    return absl::InvalidArgumentError(
        absl::StrCat("datasets: ", datasets.size(),
                     " entries: must be at most ", kMaxWorkerDatasets));
  }
  std::set<std::string> seen;
  for (int i = 0; i < datasets.size(); ++i) {
    const v1::WorkerDataset& d = datasets[i];
    const std::string f = absl::StrCat("datasets[", i, "].");
    if (!NameOk(d.name())) {
      return absl::InvalidArgumentError(absl::StrCat(
          f, "name = \"", Printable(d.name()),
          "\": must be 1 to 140 printable ASCII bytes, no '/', not starting "
          "with '.'"));
    }
    if (!seen.insert(d.name()).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          f, "name = \"", d.name(), "\": must be distinct (reported twice)"));
    }
    if (d.vocab_size() < 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(f, "vocab_size = ", d.vocab_size(),
                       ": must be >= 2 (dataset ", d.name(), ")"));
    }
    if (d.train_tokens() < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          f, "train_tokens = 0: must be >= 1 (dataset ", d.name(), ")"));
    }
  }
  return absl::OkStatus();
}

SweepDataCheck CheckSweepData(
    const std::string& dataset, uint32_t vocab_size,
    const std::vector<LeaseTable::LiveDatasets>& live) {
  SweepDataCheck out;
  bool any_unreported = false, may_run = false;
  std::vector<std::string> other_vocab;  // holders with another vocabulary
  std::vector<std::string> draining_holders;
  for (const LeaseTable::LiveDatasets& w : live) {
    if (!w.reports_datasets) {
      any_unreported = true;
      may_run |= !w.draining;
      continue;
    }
    for (const v1::WorkerDataset& d : w.datasets) {
      if (d.name() != dataset) continue;
      if (d.vocab_size() != vocab_size) {
        other_vocab.push_back(
            absl::StrCat(d.vocab_size(), " on ", w.worker_id));
        break;
      }
      if (out.unique_tokens == 0) out.unique_tokens = d.train_tokens();
      if (w.draining) {
        draining_holders.push_back(w.worker_id);
      } else {
        may_run = true;
      }
      break;
    }
  }
  if (may_run) return out;
  const std::string waiting =
      absl::StrCat("waiting for a worker that holds dataset ", dataset,
                   " with vocabulary ", vocab_size);
  if (live.empty()) {
    out.pending_reason = absl::StrCat(waiting, " (no worker is live)");
    return out;
  }
  if (!draining_holders.empty()) {
    out.pending_reason =
        absl::StrCat(waiting, " (its holders are draining: ",
                     absl::StrJoin(draining_holders, ", "), ")");
    return out;
  }
  if (any_unreported) {  // only draining unreported workers are live
    out.pending_reason =
        absl::StrCat(waiting, " (live workers: ", Holdings(live), ")");
    return out;
  }
  if (!other_vocab.empty()) {
    out.refusal = absl::InvalidArgumentError(absl::StrCat(
        "model.vocab_size = ", vocab_size,
        ": must equal the vocabulary of dataset ", dataset,
        " as the workers hold it (",
        absl::StrJoin(
            other_vocab.begin(),
            other_vocab.begin() + static_cast<std::ptrdiff_t>(
                                      std::min(other_vocab.size(), kMaxListed)),
            ", "),
        "); live workers: ", Holdings(live)));
  } else {
    out.refusal = absl::FailedPreconditionError(absl::StrCat(
        "data.dataset = \"", dataset,
        "\": no live worker holds it (live workers: ", Holdings(live),
        "); prepare it under a worker's --data-dir (`isoflop data prepare "
        "--name ",
        dataset, "`) or name a dataset they hold"));
  }
  out.pending_reason = absl::StrCat(waiting, ": ", out.refusal.message());
  return out;
}

bool FillDataRepetition(uint64_t unique_tokens, v1::TrialSpec& spec) {
  if (unique_tokens == 0 || spec.unique_tokens() != 0) return false;
  spec.set_unique_tokens(unique_tokens);
  spec.set_epochs(static_cast<double>(spec.tokens()) /
                  static_cast<double>(unique_tokens));
  return true;
}

}  // namespace isoflop::coordinator
