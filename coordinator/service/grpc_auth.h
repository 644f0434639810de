// Who may call which RPC (docs/architecture.md §5.3). Every RPC of
// SweepService, ClusterService and AnalysisService needs the user token, every
// RPC of WorkerService the worker token, as gRPC metadata `authorization:
// Bearer TOKEN`; only grpc.health.v1 and server reflection (schemas, no data)
// are open. One rule for reads and writes alike: it is the simplest to explain,
// and a sweep's configs and results are the user's data. The gRPC adapters call
// Authorize first.
#ifndef ISOFLOP_COORDINATOR_SERVICE_GRPC_AUTH_H_
#define ISOFLOP_COORDINATOR_SERVICE_GRPC_AUTH_H_

#include <string>

#include "grpcpp/grpcpp.h"

namespace isoflop::coordinator {

struct ServiceTokens {
  // The coordinator's user token: ISOFLOP_TOKEN, else STATE_DIR/token (the
  // dashboard's token too).
  std::string user;
  // The workers' token: ISOFLOP_WORKER_TOKEN, else --worker-token-file
  // (default STATE_DIR/worker_token). Allows WorkerService only.
  std::string worker;
};

enum class Caller { kUser, kWorker };

// OK when `ctx` carries the bearer token of `need` (compared in constant
// time). UNAUTHENTICATED when it carries no bearer token or an unknown one;
// PERMISSION_DENIED for the other caller's token (a worker token on a user
// RPC or the reverse). The message names the service and says where the
// token comes from; it never echoes the token sent.
grpc::Status Authorize(const grpc::CallbackServerContext& ctx,
                       const ServiceTokens& tokens, Caller need);

}  // namespace isoflop::coordinator

#endif  // ISOFLOP_COORDINATOR_SERVICE_GRPC_AUTH_H_
