#include "coordinator/http/dashboard_server.h"

#include <httplib.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "coordinator/http/auth.h"

namespace isoflop::coordinator::http {
namespace {

using nlohmann::json;

int HttpStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

bool AcceptsGzip(const httplib::Request& req) {
  return req.get_header_value("Accept-Encoding").find("gzip") !=
         std::string::npos;
}

// `in` gzip-compressed (zlib level 6), or empty on failure.
std::string Gzip(const std::string& in) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return "";
  }
  std::string out(deflateBound(&zs, in.size()), '\0');
  // zlib does not write through next_in (ZLIB_CONST would say so).
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return rc == Z_STREAM_END ? out : "";
}

// Text bodies go out gzip-compressed by us: cpp-httplib (built with brotli)
// would compress "application/json", "application/javascript" and "text/*"
// with brotli at quality 11, 0.2 s for the 80 KB of the sweep page's curves
// and 0.3 s for Chart.js, where gzip takes a few milliseconds. It leaves a
// type with a charset parameter alone.
void SetText(const httplib::Request& req, httplib::Response& res,
             std::string body, const std::string& type) {
  res.set_header("Vary", "Accept-Encoding");
  if (body.size() >= 1024 && AcceptsGzip(req)) {
    std::string z = Gzip(body);
    if (!z.empty()) {
      body = std::move(z);
      res.set_header("Content-Encoding", "gzip");
    }
  }
  res.set_content(body, absl::StrCat(type, "; charset=utf-8").c_str());
}

void Reply(const httplib::Request& req, httplib::Response& res,
           const absl::StatusOr<json>& body) {
  if (body.ok()) {
    // Replace, not throw: trial logs are the trainer's bytes, not always
    // UTF-8.
    SetText(req, res,
            body->dump(-1, ' ', false, json::error_handler_t::replace),
            "application/json");
    return;
  }
  res.status = HttpStatus(body.status().code());
  SetText(req, res,
          json{{"error", std::string(body.status().message())},
               {"code", absl::StatusCodeToString(body.status().code())}}
              .dump(),
          "application/json");
}

// An integer query parameter, or `fallback` when absent; false if malformed.
bool IntParam(const httplib::Request& req, const char* name, int fallback,
              int* out) {
  *out = fallback;
  if (!req.has_param(name)) return true;
  return absl::SimpleAtoi(req.get_param_value(name), out);
}

absl::Status BadParam(const char* name, const httplib::Request& req) {
  return absl::InvalidArgumentError(
      absl::StrCat(name, " = \"", req.get_param_value(name).substr(0, 32),
                   "\": must be an integer"));
}

// Event ids are "<boot>-<seq>": an id from another coordinator run cannot
// resume, so the stream tells that client to reload.
bool ParseEventId(const std::string& id, const std::string& boot,
                  uint64_t* seq) {
  std::pair<std::string, std::string> parts = absl::StrSplit(id, '-');
  return parts.first == boot && absl::SimpleAtoi(parts.second, seq);
}

struct Stream {
  uint64_t after = 0;
  bool reset = false;  // the client must reload (gap or unknown id)
  bool started = false;
  absl::Time last_write;
};

}  // namespace

DashboardServer::DashboardServer(DashboardApi* api, EventFeed* feed,
                                 DashboardOptions options)
    : api_(api),
      feed_(feed),
      options_(std::move(options)),
      sessions_(options_.clock, options_.session_ttl, options_.max_sessions),
      boot_id_(absl::StrCat(absl::ToUnixMillis(absl::Now()))),
      // HTTPS when the options name TLS files, else plain HTTP.
      server_(net::NewGuardedServer(options_.limits, &connection_stats_,
                                    options_.tls_cert_path,
                                    options_.tls_key_path)) {}

DashboardServer::~DashboardServer() { Shutdown(); }

absl::StatusOr<std::unique_ptr<DashboardServer>> DashboardServer::Start(
    DashboardApi* api, EventFeed* feed, const DashboardOptions& options) {
  if (options.token.empty()) {
    return absl::InvalidArgumentError("dashboard token: must not be empty");
  }
  const size_t colon = options.listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(options.listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http-listen = \"", options.listen,
                     "\": must be host:port with port in [0, 65535]"));
  }
  if (!std::filesystem::exists(std::filesystem::path(options.static_dir) /
                               "index.html")) {
    return absl::NotFoundError(
        absl::StrCat("--dashboards-dir = \"", options.static_dir,
                     "\": no index.html there (build the isoflop-coordinator "
                     "target, which copies dashboards/)"));
  }
  std::unique_ptr<DashboardServer> s(new DashboardServer(api, feed, options));
  if (!s->server_->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-cert = \"", options.tls_cert_path, "\", --tls-key = \"",
        options.tls_key_path, "\": the HTTPS server cannot load them"));
  }
  s->Routes();
  const std::string host = options.listen.substr(0, colon);
  if (port == 0) {
    port = s->server_->bind_to_any_port(host);
  } else if (!s->server_->bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "--http-listen = ", options.listen, ": cannot bind (in use?)"));
  }
  net::WidenListenBacklog(*s->server_);
  s->url_ = absl::StrCat(options.tls_cert_path.empty() ? "http" : "https",
                         "://", host, ":", port);
  s->thread_ =
      std::thread([raw = s->server_.get()] { raw->listen_after_bind(); });
  return s;
}

void DashboardServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  feed_->Close();
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string DashboardServer::GzipStatic(const std::string& path,
                                        const std::string& etag,
                                        const std::string& body) {
  {
    absl::MutexLock lock(&static_mu_);
    auto it = gzip_cache_.find(path);
    if (it != gzip_cache_.end() && it->second.first == etag)
      return it->second.second;
  }
  std::string z = Gzip(body);
  absl::MutexLock lock(&static_mu_);
  gzip_cache_[path] = {etag, z};
  return z;
}

std::shared_ptr<void> DashboardServer::EventStreamSlot() {
  if (event_streams_.fetch_add(1) >= options_.max_event_streams) {
    event_streams_--;
    return nullptr;
  }
  // Not null (a null shared_ptr would read as "no slot"); owns nothing.
  return std::shared_ptr<void>(static_cast<void*>(this),
                               [this](void*) { event_streams_--; });
}

std::string DashboardServer::NewSessionCookie() {
  // A random session id, never the token; Secure over HTTPS.
  return absl::StrCat(
      kSessionCookie, "=", sessions_.Create(),
      "; Path=/; Max-Age=", absl::ToInt64Seconds(sessions_.ttl()),
      "; HttpOnly; SameSite=Strict",
      options_.tls_cert_path.empty() ? "" : "; Secure");
}

std::string DashboardServer::LoginLink() {
  return absl::StrCat(
      url_, "/login?once=", sessions_.CreateLoginCode(options_.login_code_ttl));
}

void DashboardServer::Routes() {
  httplib::Server& svr = *server_;
  svr.set_mount_point("/", options_.static_dir);
  // Static files: revalidated on every load (Cache-Control: no-cache) against
  // an ETag of their content, so a reload costs a 304 and the browser reuses
  // its parsed Chart.js; text goes out gzip-compressed (see SetText).
  svr.set_file_request_handler([this](const httplib::Request& req,
                                      httplib::Response& res) {
    if (res.status != 200) return;
    const std::string etag = absl::StrCat(
        "\"", std::hash<std::string>{}(res.body), "-", res.body.size(), "\"");
    res.set_header("ETag", etag);
    res.set_header("Cache-Control", "no-cache");
    if (req.get_header_value("If-None-Match") == etag) {
      res.status = 304;
      res.body.clear();
      return;
    }
    const std::string type = res.get_header_value("Content-Type");
    if (type.rfind("text/", 0) != 0 && type != "application/javascript" &&
        type != "application/json" && type != "image/svg+xml") {
      return;
    }
    res.headers.erase("Content-Type");
    res.set_header("Content-Type", absl::StrCat(type, "; charset=utf-8"));
    res.set_header("Vary", "Accept-Encoding");
    if (res.body.size() < 1024 || !AcceptsGzip(req)) return;
    auto z = std::make_shared<const std::string>(
        GzipStatic(req.path, etag, res.body));
    if (z->empty()) return;
    // cpp-httplib would compress "text/*" again, but never a fixed-length
    // content provider's bytes.
    res.body.clear();
    res.headers.erase("Content-Type");
    res.set_header("Content-Encoding", "gzip");
    res.set_content_provider(
        z->size(), absl::StrCat(type, "; charset=utf-8").c_str(),
        [z](size_t offset, size_t length, httplib::DataSink& sink) {
          return sink.write(z->data() + offset,
                            std::min(length, z->size() - offset));
        });
  });
  svr.set_post_routing_handler(
      [](const httplib::Request&, httplib::Response& res) {
        // The pages may reach nothing but this origin (they run offline).
        // No other site may frame them (clickjacking).
        res.set_header("Content-Security-Policy",
                       "default-src 'self'; img-src 'self' data: blob:; "
                       "style-src 'self' 'unsafe-inline'; "
                       "frame-ancestors 'none'");
        res.set_header("X-Frame-Options", "DENY");
        res.set_header("X-Content-Type-Options", "nosniff");
        res.set_header("Referrer-Policy", "no-referrer");
      });
  svr.set_pre_routing_handler([this](const httplib::Request& req,
                                     httplib::Response& res) {
    if ((req.path.rfind("/api/", 0) != 0 && req.path != "/metrics") ||
        req.path == "/api/v1/login" || req.path == "/api/v1/logout") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const Credentials c = RequestCredentials(
        req.get_header_value("Authorization"), req.get_header_value("Cookie"));
    if (c.bearer.empty() ? sessions_.Valid(c.session)
                         : SameToken(c.bearer, options_.token)) {
      net::MarkConnectionAuthenticated();
      return httplib::Server::HandlerResponse::Unhandled;
    }
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer");
    res.set_content(
        R"({"error":"missing or wrong token: send Authorization: Bearer TOKEN (STATE_DIR/token) or log in at /login.html","code":"UNAUTHENTICATED"})",
        "application/json");
    return httplib::Server::HandlerResponse::Handled;
  });

  svr.Post("/api/v1/login",
           [this](const httplib::Request& req, httplib::Response& res) {
             if (!SameToken(req.get_param_value("token"), options_.token)) {
               res.set_redirect("/login.html?error=1", 303);
               return;
             }
             res.set_header("Set-Cookie", NewSessionCookie());
             // Back to the page that asked for the login, never to another
             // site.
             res.set_redirect(SafeNext(req.get_param_value("next")), 303);
           });
  // A one-time login link: the code is spent by this request whatever
  // follows; a spent, expired or unknown code goes to the login page, which
  // says so.
  svr.Get("/login",
          [this](const httplib::Request& req, httplib::Response& res) {
            res.set_header("Cache-Control", "no-store");
            if (!sessions_.RedeemLoginCode(req.get_param_value("once"))) {
              res.set_redirect("/login.html?error=link", 303);
              return;
            }
            res.set_header("Set-Cookie", NewSessionCookie());
            res.set_redirect(SafeNext(req.get_param_value("next")), 303);
          });
  // Mints a one-time login link (token or session required, as every
  // /api/ route): `isoflop dashboard url` asks for one.
  svr.Post("/api/v1/login/once", [this](const httplib::Request& req,
                                        httplib::Response& res) {
    const absl::Time expires =
        (options_.clock != nullptr ? options_.clock->Now() : absl::Now()) +
        options_.login_code_ttl;
    Reply(req, res,
          json{{"url", LoginLink()},
               {"expires_unix_ms", absl::ToUnixMillis(expires)},
               {"single_use", true}});
  });
  svr.Post("/api/v1/logout", [this](const httplib::Request& req,
                                    httplib::Response& res) {
    sessions_.Revoke(
        RequestCredentials("", req.get_header_value("Cookie")).session);
    res.set_header("Set-Cookie", absl::StrCat(kSessionCookie,
                                              "=; Path=/; HttpOnly; "
                                              "SameSite=Strict; Max-Age=0"));
    res.set_redirect("/login.html", 303);
  });
  svr.Get("/api/v1", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(
        json{{"version", "v1"},
             {"endpoints",
              {"GET /api/v1/sweeps", "GET /api/v1/sweeps/{id}",
               "GET /api/v1/sweeps/{id}/trials",
               "GET /api/v1/sweeps/{id}/curves", "GET /api/v1/sweeps/{id}/law",
               "GET /api/v1/sweeps/{id}/optimal?flops=C", "GET /api/v1/workers",
               "GET /api/v1/events[?sweep=ID]",
               "POST /api/v1/trials/{id}/generate",
               "POST /api/v1/trials/{id}/eval", "GET /api/v1/trials/{id}",
               "GET /api/v1/trials/{id}/logs?offset=O&attempt=K",
               "POST /api/v1/login/once"}},
             {"doc", "dashboards/API.md"}}
            .dump(),
        "application/json");
  });
  svr.Get("/api/v1/sweeps",
          [this](const httplib::Request& req, httplib::Response& res) {
            Reply(req, res, api_->Sweeps());
          });
  svr.Get(R"(/api/v1/sweeps/([A-Za-z0-9_.-]+))",
          [this](const httplib::Request& req, httplib::Response& res) {
            Reply(req, res, api_->Sweep(req.matches[1]));
          });
  svr.Get(R"(/api/v1/sweeps/([A-Za-z0-9_.-]+)/trials)",
          [this](const httplib::Request& req, httplib::Response& res) {
            TrialQuery q;
            if (!IntParam(req, "offset", 0, &q.offset))
              return Reply(req, res, BadParam("offset", req));
            if (!IntParam(req, "limit", 100, &q.limit))
              return Reply(req, res, BadParam("limit", req));
            if (req.has_param("sort")) q.sort = req.get_param_value("sort");
            const std::string order = req.get_param_value("order");
            if (req.has_param("order") && order != "asc" && order != "desc") {
              return Reply(req, res,
                           absl::InvalidArgumentError(
                               absl::StrCat("order = \"", order.substr(0, 32),
                                            "\": must be asc or desc")));
            }
            q.descending = order == "desc";
            q.state = req.get_param_value("state");
            q.search = req.get_param_value("q");
            Reply(req, res, api_->Trials(req.matches[1], q));
          });
  svr.Get(
      R"(/api/v1/sweeps/([A-Za-z0-9_.-]+)/curves)",
      [this](const httplib::Request& req, httplib::Response& res) {
        CurveQuery q;
        for (size_t i = 0; i < req.get_param_value_count("trial"); ++i)
          q.trials.push_back(req.get_param_value("trial", i));
        if (req.has_param("select")) q.select = req.get_param_value("select");
        if (req.has_param("name")) q.name = req.get_param_value("name");
        if (!IntParam(req, "points", 200, &q.max_points))
          return Reply(req, res, BadParam("points", req));
        if (!IntParam(req, "max_trials", 24, &q.max_trials))
          return Reply(req, res, BadParam("max_trials", req));
        if (req.has_param("since_step")) {
          int64_t since = 0;
          if (!absl::SimpleAtoi(req.get_param_value("since_step"), &since)) {
            return Reply(req, res, BadParam("since_step", req));
          }
          q.since_step = since;
        }
        Reply(req, res, api_->Curves(req.matches[1], q));
      });
  svr.Get(R"(/api/v1/sweeps/([A-Za-z0-9_.-]+)/law)",
          [this](const httplib::Request& req, httplib::Response& res) {
            Reply(req, res, api_->Law(req.matches[1]));
          });
  svr.Get(R"(/api/v1/sweeps/([A-Za-z0-9_.-]+)/optimal)",
          [this](const httplib::Request& req, httplib::Response& res) {
            double flops = 0;
            if (!absl::SimpleAtod(req.get_param_value("flops"), &flops)) {
              return Reply(
                  req, res,
                  absl::InvalidArgumentError(absl::StrCat(
                      "flops = \"", req.get_param_value("flops").substr(0, 32),
                      "\": must be a number such as 1e21")));
            }
            Reply(req, res, api_->Optimal(req.matches[1], flops));
          });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::string text = api_->PrometheusText();
    if (options_.generation != nullptr) {
      absl::StrAppend(&text,
                      "# HELP isoflop_generations_running trainers serving "
                      "POST /api/v1/trials/{id}/generate now\n"
                      "# TYPE isoflop_generations_running gauge\n"
                      "isoflop_generations_running ",
                      options_.generation->running(), "\n");
    }
    if (options_.rpc_latency != nullptr) {
      absl::StrAppend(&text, options_.rpc_latency->PrometheusText());
    }
    const ConnectionStats& c = connection_stats_;
    absl::StrAppend(
        &text,
        "# HELP isoflop_http_connections HTTP connections being served\n"
        "# TYPE isoflop_http_connections gauge\n"
        "isoflop_http_connections ",
        c.open.load(),
        "\n# HELP isoflop_http_event_streams open GET /api/v1/events "
        "streams\n# TYPE isoflop_http_event_streams gauge\n"
        "isoflop_http_event_streams ",
        event_streams_.load(),
        "\n# HELP isoflop_http_refused_total HTTP requests or connections "
        "refused by a limit\n# TYPE isoflop_http_refused_total counter\n"
        "isoflop_http_refused_total{reason=\"connections\"} ",
        c.refused_total.load(),
        "\nisoflop_http_refused_total{reason=\"head_too_large\"} ",
        c.head_too_large_total.load(),
        "\nisoflop_http_refused_total{reason=\"body_too_large\"} ",
        c.body_too_large_total.load(),
        "\nisoflop_http_refused_total{reason=\"timeout\"} ",
        c.timed_out_total.load(),
        "\nisoflop_http_refused_total{reason=\"evicted_unauthenticated\"} ",
        c.evicted_total.load(), "\n");
    res.set_content(text, "text/plain; version=0.0.4");
  });
  svr.Post(
      R"(/api/v1/trials/([A-Za-z0-9_.-]+)/eval)",
      [this](const httplib::Request& req, httplib::Response& res) {
        if (options_.generation == nullptr) {
          Reply(req, res, absl::UnavailableError("sampling is not configured"));
          return;
        }
        Reply(req, res, options_.generation->Eval(req.matches[1], req.body));
      });
  // Token by token from the trial's final weights (generation.h): SSE events
  // start, token*, then done or error. Not resumable: a reconnect starts a
  // new generation. A client that goes away ends it (the next write fails,
  // the stream is destroyed and kills the trainer).
  svr.Post(R"(/api/v1/trials/([A-Za-z0-9_.-]+)/generate)",
           [this](const httplib::Request& req, httplib::Response& res) {
             if (options_.generation == nullptr) {
               Reply(req, res,
                     absl::UnavailableError("generation is not configured"));
               return;
             }
             absl::StatusOr<std::unique_ptr<GenerationStream>> started =
                 options_.generation->Start(req.matches[1], req.body);
             if (!started.ok()) {
               Reply(req, res, started.status());
               return;
             }
             std::shared_ptr<GenerationStream> stream = std::move(*started);
             res.set_header("Cache-Control", "no-cache");
             res.set_chunked_content_provider(
                 "text/event-stream",
                 [stream](size_t /*offset*/, httplib::DataSink& sink) {
                   std::string out;
                   const bool more = stream->Next(absl::Seconds(1), &out);
                   // A comment when idle: a gone client shows as a failed
                   // write within a second, not at the next token.
                   if (out.empty()) out = ": working\n\n";
                   if (!sink.write(out.data(), out.size())) return false;
                   if (!more) sink.done();
                   return true;
                 });
           });
  svr.Get(R"(/api/v1/trials/([A-Za-z0-9_.-]+)/logs)",
          [this](const httplib::Request& req, httplib::Response& res) {
            int64_t offset = 0, attempt = 0;
            for (auto [name, out] : {std::pair{"offset", &offset},
                                     std::pair{"attempt", &attempt}}) {
              if (req.has_param(name) &&
                  !absl::SimpleAtoi(req.get_param_value(name), out)) {
                return Reply(req, res, BadParam(name, req));
              }
            }
            Reply(req, res, api_->TrialLogs(req.matches[1], attempt, offset));
          });
  // The sweep page's buttons: the CLI's pause, resume, cancel and retry
  // (dashboards/API.md). Only with a JSON content type, which an HTML form
  // of another site cannot send without a CORS preflight (never answered),
  // on top of the session cookie's SameSite=Strict.
  svr.Post(
      R"(/api/v1/sweeps/([A-Za-z0-9_.-]+)/([a-z]+))",
      [this](const httplib::Request& req, httplib::Response& res) {
        if (req.get_header_value("Content-Type").rfind("application/json", 0) !=
            0) {
          return Reply(req, res,
                       absl::InvalidArgumentError(absl::StrCat(
                           "Content-Type = \"",
                           req.get_header_value("Content-Type").substr(0, 64),
                           "\": must be application/json")));
        }
        Reply(req, res, api_->SweepAction(req.matches[1], req.matches[2]));
      });
  svr.Get(R"(/api/v1/trials/([A-Za-z0-9_.-]+))",
          [this](const httplib::Request& req, httplib::Response& res) {
            Reply(req, res, api_->Trial(req.matches[1]));
          });
  svr.Get("/api/v1/workers",
          [this](const httplib::Request& req, httplib::Response& res) {
            Reply(req, res, api_->Workers());
          });
  svr.Get("/api/v1/events", [this](const httplib::Request& req,
                                   httplib::Response& res) {
    std::shared_ptr<void> slot = EventStreamSlot();
    if (slot == nullptr) {
      res.set_header("Retry-After", "5");
      return Reply(req, res,
                   absl::UnavailableError(absl::StrCat(
                       "events: ", options_.max_event_streams,
                       " streams are open, the most this coordinator serves; "
                       "retry after the time in Retry-After")));
    }
    auto stream = std::make_shared<Stream>();
    const std::string last_id = req.has_header("Last-Event-ID")
                                    ? req.get_header_value("Last-Event-ID")
                                    : req.get_param_value("last_event_id");
    if (last_id.empty()) {
      stream->after = feed_->LastSeq();
    } else if (!ParseEventId(last_id, boot_id_, &stream->after)) {
      stream->after = feed_->LastSeq();
      stream->reset = true;
    }
    const std::string sweep = req.get_param_value("sweep");
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream", [this, stream, sweep, slot](
                                 size_t /*offset*/, httplib::DataSink& sink) {
          // A client that went away frees its slot within a second.
          if (!sink.is_writable()) return false;
          std::string out;
          if (!stream->started) {
            stream->started = true;
            out = "retry: 1000\n: isoflop events\n\n";
          }
          FeedBatch batch = feed_->Since(stream->after, sweep,
                                         stream->started && out.empty()
                                             ? absl::Seconds(1)
                                             : absl::ZeroDuration());
          if (batch.closed) return false;
          if (batch.gap) stream->reset = true;
          if (stream->reset) {
            stream->reset = false;
            absl::StrAppend(&out, "event: reset\ndata: {}\n\n");
          }
          for (const FeedEvent& e : batch.events) {
            absl::StrAppend(&out, "id: ", boot_id_, "-", e.seq,
                            "\nevent: ", e.type, "\ndata: ", e.data, "\n\n");
          }
          stream->after = batch.last_seq;
          const absl::Time now = absl::Now();
          if (out.empty() && now - stream->last_write > absl::Seconds(15))
            out = ": keep-alive\n\n";
          if (out.empty()) return true;
          stream->last_write = now;
          return sink.write(out.data(), out.size());
        });
  });
}

}  // namespace isoflop::coordinator::http
