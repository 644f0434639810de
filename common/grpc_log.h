// RouteGrpcLogs: gRPC's own log lines (gpr_log, e.g. "Handshake failed" when
// a plain client reaches a TLS port) through a Logger, so that
// --log-format json output stays one JSON object per line. Header-only: only
// binaries that link gRPC include it (common/ itself does not link gRPC).
#ifndef ISOFLOP_COMMON_GRPC_LOG_H_
#define ISOFLOP_COMMON_GRPC_LOG_H_

#include <grpc/support/log.h>

#include <atomic>
#include <string>

#include "common/log.h"

namespace isoflop {

// From now on gRPC logs through `logger` (null: gRPC's lines are dropped,
// for a CLI that reports its errors itself). Call from main; pass null
// before `logger` is destroyed. gRPC's file:line goes in the field "source".
inline void RouteGrpcLogs(const Logger* logger) {
  static std::atomic<const Logger*> target{nullptr};
  target.store(logger);
  gpr_set_log_function([](gpr_log_func_args* args) {
    const Logger* to = target.load();
    if (to == nullptr) return;
    to->Log(args->severity == GPR_LOG_SEVERITY_ERROR ? LogLevel::kError
                                                     : LogLevel::kInfo,
            args->message == nullptr ? "" : args->message,
            {{"source", std::string("grpc ") +
                            (args->file == nullptr ? "" : args->file) + ":" +
                            std::to_string(args->line)}});
  });
}

}  // namespace isoflop

#endif  // ISOFLOP_COMMON_GRPC_LOG_H_
