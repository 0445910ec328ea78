#include "exporter/http/server.h"

#include <CivetServer.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <exception>

#include "exporter/core/clock.h"
#include "exporter/exposition/metrics.h"
#include "exporter/exposition/views.h"
#include "exporter/http/router.h"

namespace vmtime {

std::string CivetListeningPorts(const std::string& listen_address) {
  if (!listen_address.empty() && listen_address[0] == ':') return listen_address.substr(1);
  return listen_address;
}

class HttpServer::Handler final : public CivetHandler {
 public:
  Handler(const WebConfig& web, std::shared_ptr<const Authenticator> auth,
          const SnapshotHolder& snapshots, HttpHooks hooks)
      : web_(web),
        auth_(std::move(auth)),
        snapshots_(snapshots),
        hooks_(std::move(hooks)),
        collectable_(snapshots) {}

  bool handleGet(CivetServer*, mg_connection* conn) override { return Serve(conn, "GET"); }
  bool handleHead(CivetServer*, mg_connection* conn) override { return Serve(conn, "HEAD"); }
  bool handlePost(CivetServer*, mg_connection* conn) override { return Serve(conn, "POST"); }
  bool handlePut(CivetServer*, mg_connection* conn) override { return Serve(conn, "PUT"); }
  bool handleDelete(CivetServer*, mg_connection* conn) override { return Serve(conn, "DELETE"); }
  bool handleOptions(CivetServer*, mg_connection* conn) override { return Serve(conn, "OPTIONS"); }
  bool handlePatch(CivetServer*, mg_connection* conn) override { return Serve(conn, "PATCH"); }

  void SetAuthenticator(std::shared_ptr<const Authenticator> auth) {
    std::lock_guard lock(auth_mu_);
    auth_ = std::move(auth);
  }

 private:
  static void Send(mg_connection* conn, int status, const char* reason, const char* type,
                   const std::string& body, bool head = false, const char* extra = "") {
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\n%s\r\n",
              status, reason, type, body.size(), extra);
    if (!head && !body.empty()) mg_write(conn, body.data(), body.size());
  }

  bool Serve(mg_connection* conn, const std::string& method) {
    try {
      Route(conn, method);
    } catch (const std::exception& e) {
      spdlog::error("http: {} handler failed: {}", method, e.what());
      Send(conn, 500, "Internal Server Error", "text/plain; charset=utf-8", "internal error\n");
    } catch (...) {
      Send(conn, 500, "Internal Server Error", "text/plain; charset=utf-8", "internal error\n");
    }
    return true;
  }

  void Route(mg_connection* conn, const std::string& method) {
    const mg_request_info* ri = mg_get_request_info(conn);
    const std::string path = ri && ri->local_uri ? ri->local_uri : "/";
    const bool head = method == "HEAD";
    constexpr const char* kText = "text/plain; charset=utf-8";
    const std::shared_ptr<const Authenticator> auth = Auth();
    const RouteDecision route =
        DecideRoute(method, path, {web_.telemetry_path, hooks_.lifecycle}, [&]() -> AuthOutcome {
          if (!auth || !auth->enabled()) return AuthOutcome::kAllowed;
          const char* header = mg_get_header(conn, "Authorization");
          return auth->Check(header ? header : "");
        });
    switch (route.endpoint) {
      case Endpoint::kHealthz:  // liveness: no auth, no snapshot
        return Send(conn, 200, "OK", kText, "ok\n", head);
      case Endpoint::kMethodNotAllowed:
        return MethodNotAllowed(conn, std::string(route.allow));
      case Endpoint::kUnauthorized:
        return Send(conn, 401, "Unauthorized", kText, "unauthorized\n", head,
                    "WWW-Authenticate: Basic realm=\"vmtime-exporter\"\r\n");
      case Endpoint::kTooManyRequests:
        return Send(conn, 429, "Too Many Requests", kText,
                    "too many uncached credential checks, retry later\n", head,
                    "Retry-After: 1\r\n");
      case Endpoint::kLifecycleDisabled:
        return Send(conn, 403, "Forbidden", kText, "Lifecycle API is not enabled.\n", head);
      case Endpoint::kReload:
        return Reload(conn);
      default:
        break;
    }
    if (route.endpoint == Endpoint::kTelemetry) {
      prometheus::TextSerializer serializer;
      return Send(conn, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                  serializer.Serialize(collectable_.Collect()), head);
    }
    if (route.endpoint == Endpoint::kReadyz) {
      const bool ready = hooks_.ready ? hooks_.ready() : true;
      if (ready) return Send(conn, 200, "OK", kText, "ready\n", head);
      return Send(conn, 503, "Service Unavailable", kText,
                  "not ready: first collection round not finished\n", head);
    }
    if (route.endpoint == Endpoint::kTargets) {
      auto snap = snapshots_.Get();
      return Send(conn, 200, "OK", "application/json",
                  exposition::RenderJson(*snap).dump(-1, ' ', false,
                                                     nlohmann::json::error_handler_t::replace) +
                      "\n",
                  head);
    }
    if (route.endpoint == Endpoint::kStatusPage) {  // filters and paging from the query string
      auto snap = snapshots_.Get();
      const auto query =
          exposition::ParseStatusQuery(ri && ri->query_string ? ri->query_string : "");
      return Send(conn, 200, "OK", "text/html; charset=utf-8",
                  exposition::RenderStatusPage(*snap, query, SystemClock::Instance().RealtimeNs(),
                                               web_.telemetry_path),
                  head);
    }
    Send(conn, 404, "Not Found", kText, "not found: " + path + "\n", head);
  }

  void Reload(mg_connection* conn) {
    constexpr const char* kText = "text/plain; charset=utf-8";
    Status st = hooks_.reload ? hooks_.reload() : Status(Error{"reload not available"});
    if (st.ok()) return Send(conn, 200, "OK", kText, "reloaded\n");
    Send(conn, 500, "Internal Server Error", kText,
         "failed to reload config: " + st.message() + "\n");
  }

  static void MethodNotAllowed(mg_connection* conn, const std::string& allow) {
    const std::string extra = "Allow: " + allow + "\r\n";
    Send(conn, 405, "Method Not Allowed", "text/plain; charset=utf-8",
         "method not allowed (allowed: " + allow + ")\n", false, extra.c_str());
  }

  std::shared_ptr<const Authenticator> Auth() const {
    std::lock_guard lock(auth_mu_);
    return auth_;
  }

  WebConfig web_;
  mutable std::mutex auth_mu_;
  std::shared_ptr<const Authenticator> auth_;
  const SnapshotHolder& snapshots_;
  HttpHooks hooks_;
  exposition::SnapshotCollectable collectable_;
};

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const WebConfig& web,
                                                      std::shared_ptr<const Authenticator> auth,
                                                      const SnapshotHolder& snapshots,
                                                      HttpHooks hooks) {
  if (web.telemetry_path.empty() || web.telemetry_path[0] != '/') {
    return Error{"--web.telemetry-path must start with '/': '" + web.telemetry_path + "'"};
  }
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->handler_ = std::make_unique<Handler>(web, std::move(auth), snapshots, std::move(hooks));
  std::vector<std::string> options = {"listening_ports",    CivetListeningPorts(web.listen_address),
                                      "num_threads",        "8",
                                      "request_timeout_ms", "10000",
                                      "enable_keep_alive",  "yes"};
  try {
    s->server_ = std::make_unique<CivetServer>(options);
  } catch (const std::exception& e) {
    return Error{"cannot listen on '" + web.listen_address + "': " + e.what()};
  }
  if (s->server_->getContext() == nullptr) {
    return Error{"cannot listen on '" + web.listen_address + "'"};
  }
  s->server_->addHandler("/", s->handler_.get());
  return s;
}

void HttpServer::SetAuthenticator(std::shared_ptr<const Authenticator> auth) {
  handler_->SetAuthenticator(std::move(auth));
}

HttpServer::~HttpServer() {
  if (server_) server_->close();
}

std::vector<int> HttpServer::ListeningPorts() const {
  return server_ ? server_->getListeningPorts() : std::vector<int>{};
}

}  // namespace vmtime
