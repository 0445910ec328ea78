// HTTP endpoints on civetweb: the telemetry path (Prometheus text format,
// rendered once per snapshot and gzipped on request: exposition/metrics_cache.h),
// `/` status page, `/api/v1/targets` JSON, `/api/v1/events` (audit ring), `/healthz`, `/readyz` and
// `POST /-/reload` (with --web.enable-lifecycle).
// Which request reaches which endpoint is router.h's pure DecideRoute; basic
// auth is auth.h's Authenticator, swapped whole on reload. Handlers render
// the current snapshot only; no I/O to guests or daemons happens at request
// time. HTTPS when the web config file has a `tls_server_config`
// (tls_config.h); every response carries X-Content-Type-Options: nosniff,
// HTML a CSP; an optional Host allow-list (web.allowed_hosts) answers other
// names with 421.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "exporter/config/config.h"
#include "exporter/core/result.h"
#include "exporter/exposition/snapshot_holder.h"
#include "exporter/http/auth.h"
#include "exporter/http/tls_config.h"
#include "exporter/http/web_config.h"

class CivetServer;

namespace vmtime {

struct HttpHooks {
  std::function<Status()> reload;  // POST /-/reload
  std::function<bool()> ready;     // GET /readyz
  bool lifecycle = false;          // --web.enable-lifecycle: POST /-/reload allowed
  // GET /api/v1/events: the query string in, (HTTP status, JSON body) out.
  std::function<std::pair<int, std::string>(std::string_view query)> events;
};

// ":9958" -> "9958", "127.0.0.1:0" stays, "[::1]:9958" stays.
std::string CivetListeningPorts(const std::string& listen_address);

// The host part of a Host header, lower case, without port or trailing dot:
// "Example.COM:9958" -> "example.com", "[::1]:9958" -> "[::1]".
std::string HostName(std::string_view host_header);
// Whether a request's Host header (nullptr: none) is in `allowed` (empty: any).
bool HostAllowed(const std::vector<std::string>& allowed, const char* host_header);

// Connection handling (civetweb: one worker thread per open connection).
// Measured in docs/performance.md ("HTTP connections").
inline constexpr int kWorkerThreads = 512;        // open connections served at once
inline constexpr int kConnectionQueue = 512;      // accepted, waiting for a worker
inline constexpr int kListenBacklog = 1024;       // not yet accepted (kernel)
inline constexpr int kRequestTimeoutMs = 5000;    // first request's header, and each write
inline constexpr int kKeepAliveTimeoutMs = 5000;  // idle wait for the next request
// Request line plus headers, in bytes (civetweb's max_request_size: each
// worker's request buffer). A longer head is answered 400 with a body naming
// this limit (civetweb 1.15 cannot tell it from a malformed head, so no 431).
// nginx's header buffer size; a Prometheus scrape's head is about 360 bytes.
inline constexpr int kMaxRequestHeadBytes = 8192;

class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> Start(const WebConfig& web,
                                                   std::shared_ptr<const Authenticator> auth,
                                                   const SnapshotHolder& snapshots,
                                                   HttpHooks hooks);
  ~HttpServer();
  std::vector<int> ListeningPorts() const;
  // Replaces the authenticator (reload of --web.config.file); requests
  // already past their auth check finish with the old one, every later
  // request uses the new one.
  void SetAuthenticator(std::shared_ptr<const Authenticator> auth);
  // Re-reads the certificate, key and CA files named by the web config's
  // tls_server_config (reload). New handshakes use them; open connections
  // keep theirs. On error nothing changes.
  Status ReloadTls();
  bool tls() const { return tls_ != nullptr; }

 private:
  class Handler;
  HttpServer() = default;
  std::string web_config_file_;
  std::unique_ptr<TlsContexts> tls_;  // outlives server_ (declared first)
  std::unique_ptr<Handler> handler_;
  std::unique_ptr<CivetServer> server_;
};

}  // namespace vmtime
