#include "exporter/http/server.h"

#include <CivetServer.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <exception>

#include "exporter/exposition/metrics_cache.h"
#include "exporter/exposition/views.h"

namespace vmtime {

std::string CivetListeningPorts(const std::string& listen_address) {
  if (!listen_address.empty() && listen_address[0] == ':') return listen_address.substr(1);
  return listen_address;
}

class HttpServer::Handler final : public CivetHandler {
 public:
  Handler(const WebConfig& web, BasicAuth auth, const SnapshotHolder& snapshots, HttpHooks hooks)
      : web_(web),
        auth_(std::move(auth)),
        snapshots_(snapshots),
        hooks_(std::move(hooks)),
        metrics_(snapshots) {}

  bool handleGet(CivetServer*, mg_connection* conn) override { return Serve(conn, "GET"); }
  bool handleHead(CivetServer*, mg_connection* conn) override { return Serve(conn, "HEAD"); }
  bool handlePost(CivetServer*, mg_connection* conn) override { return Serve(conn, "POST"); }
  bool handlePut(CivetServer*, mg_connection* conn) override { return Serve(conn, "PUT"); }
  bool handleDelete(CivetServer*, mg_connection* conn) override { return Serve(conn, "DELETE"); }
  bool handleOptions(CivetServer*, mg_connection* conn) override { return Serve(conn, "OPTIONS"); }
  bool handlePatch(CivetServer*, mg_connection* conn) override { return Serve(conn, "PATCH"); }

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
    if (path == "/healthz") {  // liveness: no auth, no snapshot
      if (method != "GET" && !head) return MethodNotAllowed(conn, "GET, HEAD");
      return Send(conn, 200, "OK", kText, "ok\n", head);
    }
    if (auth_.enabled()) {
      const char* header = mg_get_header(conn, "Authorization");
      if (!auth_.Check(header ? header : "")) {
        return Send(conn, 401, "Unauthorized", kText, "unauthorized\n", head,
                    "WWW-Authenticate: Basic realm=\"vmtime-exporter\"\r\n");
      }
    }
    if (path == "/-/reload") {
      if (method != "POST" && method != "PUT") return MethodNotAllowed(conn, "POST, PUT");
      Status st = hooks_.reload ? hooks_.reload() : Status(Error{"reload not available"});
      if (st.ok()) return Send(conn, 200, "OK", kText, "reloaded\n");
      return Send(conn, 500, "Internal Server Error", kText,
                  "failed to reload config: " + st.message() + "\n");
    }
    if (method != "GET" && !head) return MethodNotAllowed(conn, "GET, HEAD");
    if (path == web_.telemetry_path) return ServeTelemetry(conn, head);
    if (path == "/readyz") {
      const bool ready = hooks_.ready ? hooks_.ready() : true;
      if (ready) return Send(conn, 200, "OK", kText, "ready\n", head);
      return Send(conn, 503, "Service Unavailable", kText,
                  "not ready: first collection round not finished\n", head);
    }
    if (path == "/api/v1/targets") {
      auto snap = snapshots_.Get();
      return Send(conn, 200, "OK", "application/json",
                  exposition::RenderJson(*snap).dump(-1, ' ', false,
                                                     nlohmann::json::error_handler_t::replace) +
                      "\n",
                  head);
    }
    if (path == "/") {
      auto snap = snapshots_.Get();
      return Send(conn, 200, "OK", "text/html; charset=utf-8",
                  exposition::RenderStatusPage(*snap, web_.telemetry_path), head);
    }
    Send(conn, 404, "Not Found", kText, "not found: " + path + "\n", head);
  }

  // The cached body of the current snapshot (exposition/metrics_cache.h),
  // gzip when the scraper accepts it; HEAD renders nothing and names the
  // length only when the body is already made.
  void ServeTelemetry(mg_connection* conn, bool head) {
    constexpr const char* kType = "text/plain; version=0.0.4; charset=utf-8";
    const char* accept = mg_get_header(conn, "Accept-Encoding");
    const bool gzip = exposition::AcceptsGzip(accept ? accept : "");
    const char* extra =
        gzip ? "Vary: Accept-Encoding\r\nContent-Encoding: gzip\r\n" : "Vary: Accept-Encoding\r\n";
    if (head) {
      const auto size = metrics_.PeekSize(gzip);
      const std::string length =
          size ? "Content-Length: " + std::to_string(*size) + "\r\n" : std::string();
      mg_printf(conn, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n%sCache-Control: no-store\r\n%s\r\n",
                kType, length.c_str(), extra);
      return;
    }
    auto body = metrics_.Get(gzip);
    if (!body.ok()) {
      spdlog::error("http: rendering {} failed: {}", web_.telemetry_path, body.error().message);
      return Send(conn, 500, "Internal Server Error", "text/plain; charset=utf-8",
                  "internal error\n");
    }
    Send(conn, 200, "OK", kType, **body, false, extra);
  }

  static void MethodNotAllowed(mg_connection* conn, const char* allow) {
    const std::string extra = std::string("Allow: ") + allow + "\r\n";
    Send(conn, 405, "Method Not Allowed", "text/plain; charset=utf-8",
         std::string("method not allowed (allowed: ") + allow + ")\n", false, extra.c_str());
  }

  WebConfig web_;
  BasicAuth auth_;
  const SnapshotHolder& snapshots_;
  HttpHooks hooks_;
  exposition::MetricsCache metrics_;
};

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const WebConfig& web, BasicAuth auth,
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

HttpServer::~HttpServer() {
  if (server_) server_->close();
}

std::vector<int> HttpServer::ListeningPorts() const {
  return server_ ? server_->getListeningPorts() : std::vector<int>{};
}

}  // namespace vmtime
