#include "exporter/http/server.h"

#include <CivetServer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>

#include "exporter/core/clock.h"
#include "exporter/exposition/metrics_cache.h"
#include "exporter/exposition/views.h"
#include "exporter/http/router.h"
#include "exporter/http/worker_stack.h"

namespace vmtime {

std::string CivetListeningPorts(const std::string& listen_address) {
  if (!listen_address.empty() && listen_address[0] == ':') return listen_address.substr(1);
  return listen_address;
}

std::string HostName(std::string_view host_header) {
  std::string_view h = host_header;
  if (!h.empty() && h.front() == '[') {  // "[::1]:9958"
    const auto close = h.find(']');
    h = close == std::string_view::npos ? h : h.substr(0, close + 1);
  } else if (const auto colon = h.rfind(':'); colon != std::string_view::npos) {
    h = h.substr(0, colon);
  }
  std::string out(h);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!out.empty() && out.back() == '.') out.pop_back();  // "example.com." is "example.com"
  return out;
}

bool HostAllowed(const std::vector<std::string>& allowed, const char* host_header) {
  if (allowed.empty()) return true;
  if (host_header == nullptr) return false;
  const std::string host = HostName(host_header);
  for (const auto& a : allowed) {
    if (HostName(a) == host) return true;
  }
  return false;
}

constexpr const char* kHtmlSecurityHeaders =
    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'\r\n"
    "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n";

class HttpServer::Handler final : public CivetHandler {
 public:
  Handler(const WebConfig& web, std::shared_ptr<const Authenticator> auth,
          const SnapshotHolder& snapshots, HttpHooks hooks)
      : web_(web),
        auth_(std::move(auth)),
        snapshots_(snapshots),
        hooks_(std::move(hooks)),
        metrics_(snapshots, exposition::kGzipLevel, /*refresh_in_background=*/true) {}

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
  // The status line and the headers every response carries; Content-Length
  // only when `length` is known (a HEAD of a body not rendered yet).
  static void SendHeaders(mg_connection* conn, int status, const char* reason, const char* type,
                          std::optional<size_t> length, const char* extra) {
    // The status page has no scripts or images and one GET form to itself:
    // nothing may load, forms go only to this origin, nobody may frame it.
    const bool html = std::strncmp(type, "text/html", 9) == 0;
    std::string head =
        "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + type + "\r\n";
    if (length) head += "Content-Length: " + std::to_string(*length) + "\r\n";
    head += "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n";
    if (html) head += kHtmlSecurityHeaders;
    head += extra;
    head += "\r\n";
    WriteAll(conn, head);
  }

  // mg_write, not mg_printf: mg_printf formats into an 8 KiB array on the
  // worker's stack, and every worker that ever answered would keep those
  // pages resident (docs/performance.md, "HTTP connections").
  static void WriteAll(mg_connection* conn, const std::string& bytes) {
    mg_write(conn, bytes.data(), bytes.size());
  }

  static void Send(mg_connection* conn, int status, const char* reason, const char* type,
                   const std::string& body, bool head = false, const char* extra = "") {
    SendHeaders(conn, status, reason, type, body.size(), extra);
    if (!head && !body.empty()) mg_write(conn, body.data(), body.size());
  }

  bool Serve(mg_connection* conn, const std::string& method) {
    try {
      const mg_request_info* ri = mg_get_request_info(conn);
      const bool healthz = ri && ri->local_uri && std::strcmp(ri->local_uri, "/healthz") == 0;
      if (!healthz && !HostAllowed(web_.allowed_hosts, mg_get_header(conn, "Host"))) {
        // DNS rebinding: a name we do not serve. Fixed body, nothing echoed.
        Send(conn, 421, "Misdirected Request", "text/plain; charset=utf-8",
             "misdirected request: this Host is not served here (web.allowed_hosts)\n",
             method == "HEAD");
        return true;
      }
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
    if (route.endpoint == Endpoint::kTelemetry) return ServeTelemetry(conn, head);
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
    if (route.endpoint == Endpoint::kEvents && hooks_.events) {
      const auto [status, body] = hooks_.events(ri && ri->query_string ? ri->query_string : "");
      if (status == 200) return Send(conn, 200, "OK", "application/json", body, head);
      return Send(conn, 400, "Bad Request", kText, body, head);
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
    Send(conn, 404, "Not Found", kText, "not found\n", head);  // the path is not echoed
  }

  void Reload(mg_connection* conn) {
    constexpr const char* kText = "text/plain; charset=utf-8";
    Status st = hooks_.reload ? hooks_.reload() : Status(Error{"reload not available"});
    if (st.ok()) return Send(conn, 200, "OK", kText, "reloaded\n");
    Send(conn, 500, "Internal Server Error", kText,
         "failed to reload config: " + st.message() + "\n");
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
    if (head) return SendHeaders(conn, 200, "OK", kType, metrics_.PeekSize(gzip), extra);
    auto body = metrics_.Get(gzip);
    if (!body.ok()) {
      spdlog::error("http: rendering {} failed: {}", web_.telemetry_path, body.error().message);
      return Send(conn, 500, "Internal Server Error", "text/plain; charset=utf-8",
                  "internal error\n");
    }
    SendHeaders(conn, 200, "OK", kType, (*body)->size(), extra);
    WriteParts(conn, **body);
  }

  // The body's parts through one buffer of kWriteBufferBytes: the gzip body
  // is thousands of small pieces (a few hundred bytes each), and one
  // mg_write, so one send(2), per piece would cost more than copying them.
  // Parts at least as large as the buffer are written as they are. The
  // buffer is on the worker's stack (256 KiB; a request's frames take about
  // 24 KiB), not the heap: a heap block of this size per request, freed
  // between the long-lived blocks of the single arena, would fragment it;
  // the worker hands the stack pages back when its connection closes
  // (http/worker_stack.h).
  static void WriteParts(mg_connection* conn, const exposition::ResponseBody& body) {
    constexpr size_t kWriteBufferBytes = 32 * 1024;
    std::array<char, kWriteBufferBytes> buffer;  // NOLINT(cppcoreguidelines-pro-type-member-init)
    size_t used = 0;
    const auto flush = [&] {
      const bool ok = used == 0 || mg_write(conn, buffer.data(), used) > 0;
      used = 0;
      return ok;
    };
    for (const auto& part : body.parts()) {
      if (used + part->size() > kWriteBufferBytes && !flush()) return;  // peer gone
      if (part->size() >= kWriteBufferBytes) {
        if (mg_write(conn, part->data(), part->size()) <= 0) return;
        continue;
      }
      std::memcpy(buffer.data() + used, part->data(), part->size());
      used += part->size();
    }
    flush();
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
  exposition::MetricsCache metrics_;
};

namespace {

// One worker thread per open connection (civetweb 1.15 has no event loop):
// a connection that sends nothing, or one byte a second, holds a worker
// until its header deadline. kWorkerThreads leaves scrapes answering with
// that many slow connections open; README "Connection limits".
std::vector<std::string> ServerOptions(const std::string& ports) {
  return {"listening_ports",       ports,
          "num_threads",           std::to_string(kWorkerThreads),
          "connection_queue",      std::to_string(kConnectionQueue),
          "listen_backlog",        std::to_string(kListenBacklog),
          "request_timeout_ms",    std::to_string(kRequestTimeoutMs),
          "keep_alive_timeout_ms", std::to_string(kKeepAliveTimeoutMs),
          "max_request_size",      std::to_string(kMaxRequestHeadBytes),
          "enable_keep_alive",     "yes",
          "tcp_nodelay",           "1",
          "additional_header",     "X-Content-Type-Options: nosniff"};
}

CivetCallbacks ServerCallbacks() {
  CivetCallbacks callbacks{};
  // The SSL_CTX is ours (TlsContexts): civetweb neither configures nor frees it.
  callbacks.external_ssl_ctx = [](void** ssl_ctx, void* user_data) -> int {
    const auto* server = static_cast<const CivetServer*>(user_data);
    const auto* contexts = static_cast<const TlsContexts*>(server->getUserContext());
    if (contexts == nullptr) return 0;
    *ssl_ctx = contexts->front();
    return 1;
  };
  // civetweb's own error responses (malformed requests, 505, 413, ...)
  // echo parts of the request; answer with a fixed text instead.
  callbacks.http_error = [](mg_connection* conn, int status, const char* msg) -> int {
    const char* reason = mg_get_response_code_text(conn, status);
    std::string body = std::to_string(status) + " " + reason;
    if (status == 400 && msg != nullptr && std::strcmp(msg, "Malformed message") == 0) {
      // civetweb 1.15 says this both for a head it cannot parse and for one
      // that does not fit its request buffer (max_request_size).
      body += ": malformed request head, or request line and headers over " +
              std::to_string(kMaxRequestHeadBytes) + " bytes";
    }
    body += "\n";
    const std::string response = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                                 "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                                 std::to_string(body.size()) +
                                 "\r\nCache-Control: no-store\r\nX-Content-Type-Options: "
                                 "nosniff\r\nConnection: close\r\n\r\n" +
                                 body;
    mg_write(conn, response.data(), response.size());  // not mg_printf: see WriteAll
    return 0;                                          // handled
  };
  // The worker is shallow again: hand back what its deepest request touched
  // (worker_stack.h).
  callbacks.connection_close = [](const mg_connection* /*conn*/) { ReleaseStackBelow(); };
  return callbacks;
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const WebConfig& web,
                                                      std::shared_ptr<const Authenticator> auth,
                                                      const SnapshotHolder& snapshots,
                                                      HttpHooks hooks) {
  if (web.telemetry_path.empty() || web.telemetry_path[0] != '/') {
    return Error{"--web.telemetry-path must start with '/': '" + web.telemetry_path + "'"};
  }
  auto tls = LoadTlsServerConfig(web.config_file);
  if (!tls) return tls.error();
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->web_config_file_ = web.config_file;
  if (*tls) {
    auto contexts = TlsContexts::Create(**tls);
    if (!contexts) return Error{web.config_file + ": " + contexts.error().message};
    s->tls_ = std::move(*contexts);
  }
  s->handler_ = std::make_unique<Handler>(web, std::move(auth), snapshots, std::move(hooks));
  const std::string ports = CivetListeningPorts(web.listen_address) + (s->tls_ ? "s" : "");
  const std::vector<std::string> options = ServerOptions(ports);
  const CivetCallbacks callbacks = ServerCallbacks();
  try {
    s->server_ = std::make_unique<CivetServer>(options, &callbacks, s->tls_.get());
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

Status HttpServer::ReloadTls() {
  auto tls = LoadTlsServerConfig(web_config_file_);
  if (!tls) return tls.error();
  if (tls->has_value() != (tls_ != nullptr)) {
    return Error{web_config_file_ + ": tls_server_config was " + (tls_ ? "removed" : "added") +
                 "; switching between HTTP and HTTPS needs a restart"};
  }
  if (!tls_) return Status::Ok();
  Status st = tls_->Replace(**tls);
  if (!st) return Error{web_config_file_ + ": " + st.message()};
  return Status::Ok();
}

std::vector<int> HttpServer::ListeningPorts() const {
  return server_ ? server_->getListeningPorts() : std::vector<int>{};
}

}  // namespace vmtime
