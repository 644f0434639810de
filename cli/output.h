// How the CLI shows things: human tables and text (--format table) or JSON
// (--format json; protobuf's JSON mapping with the proto field names). Pure
// functions from messages to strings; nothing here does I/O.
#ifndef ISOFLOP_CLI_OUTPUT_H_
#define ISOFLOP_CLI_OUTPUT_H_

#include <google/protobuf/message.h>

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "isoflop/v1/service.pb.h"

namespace isoflop::cli {

enum class Format { kTable, kJson };

// The shortest decimal text that reads back as exactly `v` ("0.33917").
std::string FullPrecision(double v);

// One JSON object (single line) for `message`; default-valued fields
// included; 64-bit integers as numbers (protobuf's mapping prints strings).
std::string ToJson(const google::protobuf::Message& message);
// A JSON object {"key": message, ...} from named messages (single line).
std::string ToJsonObject(
    const std::vector<std::pair<std::string, const google::protobuf::Message*>>&
        fields);

// Columns padded to their widest cell; first row is the header. Control
// characters and bytes that are not UTF-8 are shown as \xNN
// (common/text.h's EscapeUnprintable).
std::string RenderTable(const std::vector<std::vector<std::string>>& rows);

// "3/12 succeeded, 2 running, 7 pending, 0 failed".
std::string TrialCountsText(const v1::Sweep& sweep);
// "priority 5, max_concurrent_trials 2" ("... unlimited" for 0).
std::string SchedulingText(const v1::Scheduling& scheduling);

std::string SweepsTable(const v1::ListSweepsResponse& sweeps);
// Header lines (id, name, state, counts; scheduling) and a table of the
// trials.
std::string SweepStatusText(const v1::Sweep& sweep, int digits = 3);
// The whole sweep's progress for `--wait`: "[5/12] 4 done, 1 failed, 2
// running, 5 pending; elapsed 1m30s, ETA 2m10s". ETA from the share of the
// sweep's FLOPs done (running trials by step / steps) over `elapsed`; "ETA
// -" until some is done. Done counts succeeded, failed and cancelled trials.
std::string OverallProgressText(const v1::Sweep& sweep, absl::Duration elapsed);
// "t-… d64/L2 N=… D=… C=… RUNNING step 120/400 loss 4.12" (no newline).
std::string TrialProgressLine(const v1::Trial& trial);
// The fitted law, its verdict and reasons (analysis/verdict.h), every
// number to `digits` significant figures (0: full precision), intervals of
// A and B as ×/÷ factors, then the fit's bookkeeping (points, starts,
// objective, warnings), Approach 2 with its verdict, the backtest and the
// bootstrap (resamples, failed).
std::string FitText(const v1::ScalingLawFit& fit, int digits = 3);
// "backtest: the law fitted on budgets <= C_k FLOPs (n points) predicts
// budget C: ..." or "backtest: none: why", "" when the fit has neither.
std::string BacktestText(const v1::ScalingLawFit& fit, int digits = 3);
// ID, HOST, GPUS, CPU_SLOTS, STATE (live, draining, lost, "lost,
// draining"), HEARTBEAT (age: "1.2s ago", "3m4.5s ago"), TRIALS (running
// trial ids, "-"), DATASETS (each as "name(V=vocab, N tokens)" with its
// training tokens, "none", or "not reported").
std::string WorkersTable(const v1::ListWorkersResponse& workers);
// N_opt, D_opt and the predicted loss for one budget, then the FLOP convention.
// N and D as counts with K/M/B/T, intervals as ×/÷ factors.
std::string OptimalText(const v1::OptimalResponse& optimal, int digits = 3);

}  // namespace isoflop::cli

#endif  // ISOFLOP_CLI_OUTPUT_H_
