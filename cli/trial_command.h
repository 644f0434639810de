// `isoflop trial sample` and `isoflop trial eval`: the coordinator's HTTP API
// (POST /api/v1/trials/{id}/generate and /eval, dashboards/API.md), which
// runs the trial's final weights (coordinator/http/generation.h).
#ifndef ISOFLOP_CLI_TRIAL_COMMAND_H_
#define ISOFLOP_CLI_TRIAL_COMMAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cli/commands.h"

namespace isoflop::cli {

struct TrialHttp {
  std::string url;    // the coordinator's --http-listen, e.g. http://h:8080
  std::string token;  // the user token
  // For an https:// url: the PEM CA file that verifies the coordinator's
  // certificate (empty: the system's CAs).
  std::string tls_ca_path;
};

struct SampleOptions {
  std::string trial;
  std::string prompt;               // text (the dataset's tokenizer encodes it)
  std::vector<int64_t> prompt_ids;  // or token ids
  int64_t max_new_tokens = 64;
  double temperature = 0.8;
  int64_t top_k = 0;
  double top_p = 0.95;
  int64_t seed = 0;
  bool ignore_eos = false;
};

// Prints the continuation as it arrives (table: the text, or the ids for a
// dataset without a tokenizer, then a summary line on ctx.err; json: each
// event as one JSON line). Errors carry the server's message.
absl::Status SampleTrial(const CommandContext& ctx, const TrialHttp& http,
                         const SampleOptions& options);

// Loss of the trial's model on the validation tokens of the dataset named
// `data` in the coordinator's --data-dir (a name, never a path:
// INVALID_ARGUMENT naming --data otherwise).
absl::Status EvalTrial(const CommandContext& ctx, const TrialHttp& http,
                       const std::string& trial, const std::string& data);

// `isoflop dashboard url`: asks the coordinator (POST /api/v1/login/once,
// dashboards/API.md "One-time login links") for a login link that opens the
// dashboard once, within 10 minutes, without the token; prints it (json:
// {url, expires_unix_ms, single_use}).
absl::Status DashboardLoginUrl(const CommandContext& ctx,
                               const TrialHttp& http);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_TRIAL_COMMAND_H_
