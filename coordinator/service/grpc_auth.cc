#include "coordinator/service/grpc_auth.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/bearer_token.h"

namespace isoflop::coordinator {
namespace {

constexpr char kUserSource[] =
    "the user token: the coordinator's ISOFLOP_TOKEN, else the file `token` "
    "in its state directory (beside --db); `isoflop` sends ISOFLOP_TOKEN, "
    "else the file named by --token-file or ISOFLOP_TOKEN_FILE";
constexpr char kWorkerSource[] =
    "the worker token: the coordinator's ISOFLOP_WORKER_TOKEN, else its "
    "--worker-token-file (default: `worker_token` beside --db); "
    "`isoflop-worker` sends ISOFLOP_WORKER_TOKEN, else the file named by "
    "--token-file";

// The bearer token in the call's metadata; "" when there is none.
std::string BearerToken(const grpc::CallbackServerContext& ctx) {
  const auto& metadata = ctx.client_metadata();
  const auto it = metadata.find(kAuthorizationKey);
  if (it == metadata.end()) return "";
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&value, kBearerPrefix)) return "";
  return std::string(value);
}

}  // namespace

grpc::Status Authorize(const grpc::CallbackServerContext& ctx,
                       const ServiceTokens& tokens, Caller need) {
  const bool user = need == Caller::kUser;
  const char* service =
      user ? "SweepService, ClusterService and AnalysisService need"
           : "WorkerService needs";
  const char* source = user ? kUserSource : kWorkerSource;
  const std::string token = BearerToken(ctx);
  if (token.empty()) {
    return grpc::Status(
        grpc::StatusCode::UNAUTHENTICATED,
        absl::StrCat("no `authorization: Bearer TOKEN` metadata: ", service,
                     " ", source));
  }
  if (SameToken(token, user ? tokens.user : tokens.worker)) {
    return grpc::Status::OK;
  }
  if (SameToken(token, user ? tokens.worker : tokens.user)) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("this is the ", user ? "worker" : "user",
                                     " token; ", service, " ", source));
  }
  return grpc::Status(
      grpc::StatusCode::UNAUTHENTICATED,
      absl::StrCat("bearer token not accepted: ", service, " ", source));
}

}  // namespace isoflop::coordinator
