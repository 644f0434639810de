#include "cli/trial_command.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <functional>
#include <ostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "nlohmann/json.hpp"

namespace isoflop::cli {
namespace {

using nlohmann::json;

// POSTs `body` to `path`; `on_data` sees the body as it arrives (only for a
// 200 answer). Returns the status code and, when not 200, the body.
absl::Status Post(const TrialHttp& http, const std::string& path,
                  const std::string& body,
                  const std::function<void(const char*, size_t)>& on_data,
                  std::string* error_body) {
  httplib::Client client(http.url);
  if (!client.is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http = ", http.url, ": not a URL like http://127.0.0.1:8080"));
  }
  client.set_read_timeout(600, 0);  // a long eval answers at its end
  const bool https = absl::StartsWith(http.url, "https://");
  if (https && !http.tls_ca_path.empty()) {
    client.set_ca_cert_path(http.tls_ca_path);
  }
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body;
  req.set_header("Content-Type", "application/json");
  req.set_header("Authorization", absl::StrCat("Bearer ", http.token));
  int status = 0;
  req.response_handler = [&status](const httplib::Response& r) {
    status = r.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (status == 200) {
      on_data(data, n);
    } else {
      error_body->append(data, n);
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  if (!client.send(req, res, err)) {
    std::string hint;
    if (!https && SpeaksTls(http.url)) {
      hint = "it uses TLS: pass --http https://HOST:PORT and --tls-ca FILE";
    } else if (https && err == httplib::Error::SSLConnection) {
      hint = SpeaksTls(http.url)
                 ? "its certificate is not signed by --tls-ca or does not "
                   "name this host"
                 : "it does not use TLS: pass --http http://HOST:PORT";
    } else if (err == httplib::Error::SSLServerVerification) {
      hint =
          "its certificate is not signed by --tls-ca or does not name "
          "this host";
    }
    return absl::UnavailableError(absl::StrCat(
        http.url, path, ": ", httplib::to_string(err), " (",
        hint.empty() ? "is the coordinator's --http-listen this address? "
                       "--http / ISOFLOP_HTTP"
                     : hint,
        ")"));
  }
  if (status == 200) return absl::OkStatus();
  const json e = json::parse(*error_body, nullptr, false);
  const std::string message =
      e.is_object() ? e.value("error", *error_body) : *error_body;
  switch (status) {
    case 400:
      return absl::InvalidArgumentError(message);
    case 401:
      return absl::UnauthenticatedError(message);
    case 404:
      return absl::NotFoundError(message);
    case 409:
      return absl::FailedPreconditionError(message);
    case 429:
      return absl::ResourceExhaustedError(message);
    case 503:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(absl::StrCat("HTTP ", status, ": ", message));
  }
}

}  // namespace

absl::Status SampleTrial(const CommandContext& ctx, const TrialHttp& http,
                         const SampleOptions& o) {
  json body{{"max_new_tokens", o.max_new_tokens},
            {"temperature", o.temperature},
            {"top_k", o.top_k},
            {"top_p", o.top_p},
            {"seed", o.seed},
            {"ignore_eos", o.ignore_eos}};
  if (!o.prompt.empty()) body["prompt"] = o.prompt;
  if (!o.prompt_ids.empty()) body["prompt_ids"] = o.prompt_ids;
  const bool as_json = ctx.format == Format::kJson;
  std::string pending, error_body, failure;
  json done;
  bool text = true;
  // SSE: events end with a blank line; each has "event: T" and "data: J".
  auto on_event = [&](const std::string& event) {
    std::string type, data;
    for (const auto& line : absl::StrSplit(event, '\n')) {
      if (absl::StartsWith(line, "event: ")) type = std::string(line.substr(7));
      if (absl::StartsWith(line, "data: ")) data = std::string(line.substr(6));
    }
    if (type.empty()) return;  // a comment (keep-alive)
    const json j = json::parse(data, nullptr, false);
    if (as_json) {
      *ctx.out << json{{"event", type}, {"data", j}}.dump() << "\n"
               << std::flush;
    }
    if (type == "start") {
      text = j.value("text", false);
      if (!as_json && !o.prompt.empty()) *ctx.out << o.prompt;
    } else if (type == "token" && !as_json) {
      if (text) {
        *ctx.out << j.value("text", std::string());
      } else {
        *ctx.out << j.value("token", int64_t{-1}) << ' ';
      }
      ctx.out->flush();
    } else if (type == "done") {
      done = j;
    } else if (type == "error") {
      failure = j.value("error", data);
    }
  };
  absl::Status s = Post(
      http, absl::StrCat("/api/v1/trials/", o.trial, "/generate"), body.dump(),
      [&](const char* data, size_t n) {
        pending.append(data, n);
        size_t end;
        while ((end = pending.find("\n\n")) != std::string::npos) {
          on_event(pending.substr(0, end));
          pending.erase(0, end + 2);
        }
      },
      &error_body);
  if (!s.ok()) return s;
  if (!as_json) *ctx.out << "\n" << std::flush;
  if (!failure.empty()) return absl::InternalError(failure);
  if (!done.is_object()) {
    return absl::UnavailableError("the stream ended before its done event");
  }
  if (!as_json) {
    const double first = done.value("first_token_ms", 0.0);
    const double last = done.value("last_token_ms", 0.0);
    const int64_t n = done.value("n", int64_t{0});
    *ctx.err << absl::StrFormat(
        "%d tokens (%s); first token after %.0f ms, then %.0f tokens/s\n", n,
        done.value("reason", std::string("?")), first,
        last > first ? (n - 1) * 1000.0 / (last - first) : 0.0);
  }
  return absl::OkStatus();
}

absl::Status EvalTrial(const CommandContext& ctx, const TrialHttp& http,
                       const std::string& trial, const std::string& data) {
  // The coordinator takes a dataset name only (it validates it too); a path
  // is refused here with the same rule, before any request.
  if (data.empty() || data.size() > 64 ||
      !std::isalnum(static_cast<unsigned char>(data[0])) ||
      !std::all_of(data.begin(), data.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' ||
               c == '_' || c == '.';
      })) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--data = \"", data,
        "\": must be a dataset name (1 to 64 of [A-Za-z0-9_.-], starting "
        "with a letter or digit) in the coordinator's --data-dir, not a "
        "path"));
  }
  std::string answer, error_body;
  RETURN_IF_ERROR(Post(
      http, absl::StrCat("/api/v1/trials/", trial, "/eval"),
      json{{"data", data}}.dump(),
      [&](const char* d, size_t n) { answer.append(d, n); }, &error_body));
  const json j = json::parse(answer, nullptr, false);
  if (!j.is_object()) {
    return absl::InternalError(absl::StrCat("not JSON: ", answer));
  }
  if (ctx.format == Format::kJson) {
    *ctx.out << j.dump() << "\n";
    return absl::OkStatus();
  }
  *ctx.out << absl::StrFormat(
      "trial %s on %s: loss %.4f nats/token over %d tokens", trial, data,
      j.value("loss", 0.0), j.value("tokens", int64_t{0}));
  if (j.contains("bits_per_byte") && j["bits_per_byte"].is_number()) {
    *ctx.out << absl::StrFormat(", %.4f bits/byte (%d bytes)",
                                j["bits_per_byte"].get<double>(),
                                j.value("bytes", int64_t{0}));
  }
  *ctx.out << "\n";
  return absl::OkStatus();
}

absl::Status DashboardLoginUrl(const CommandContext& ctx,
                               const TrialHttp& http) {
  std::string answer, error_body;
  RETURN_IF_ERROR(Post(
      http, "/api/v1/login/once", "",
      [&](const char* d, size_t n) { answer.append(d, n); }, &error_body));
  const json j = json::parse(answer, nullptr, false);
  if (!j.is_object() || !j.contains("url") || !j["url"].is_string()) {
    return absl::InternalError(absl::StrCat("not a login link: ", answer));
  }
  if (ctx.format == Format::kJson) {
    *ctx.out << j.dump() << "\n";
    return absl::OkStatus();
  }
  *ctx.out << j["url"].get<std::string>() << "\n";
  *ctx.err << "opens the dashboard once, within 10 minutes; the token "
              "stays out of the link\n";
  return absl::OkStatus();
}

}  // namespace isoflop::cli
