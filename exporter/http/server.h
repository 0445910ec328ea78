// HTTP endpoints on civetweb: the telemetry path (Prometheus text format,
// rendered once per snapshot and gzipped on request: exposition/metrics_cache.h),
// `/` status page, `/api/v1/targets` JSON,
// `/healthz`, `/readyz` and `POST /-/reload`. Handlers render the current
// snapshot only; no I/O to guests or daemons happens at request time.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "exporter/config/config.h"
#include "exporter/core/result.h"
#include "exporter/exposition/snapshot_holder.h"
#include "exporter/http/web_config.h"

class CivetServer;

namespace vmtime {

struct HttpHooks {
  std::function<Status()> reload;  // POST /-/reload
  std::function<bool()> ready;     // GET /readyz
};

// ":9958" -> "9958", "127.0.0.1:0" stays, "[::1]:9958" stays.
std::string CivetListeningPorts(const std::string& listen_address);

class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> Start(const WebConfig& web, BasicAuth auth,
                                                   const SnapshotHolder& snapshots,
                                                   HttpHooks hooks);
  ~HttpServer();
  std::vector<int> ListeningPorts() const;

 private:
  class Handler;
  HttpServer() = default;
  std::unique_ptr<Handler> handler_;
  std::unique_ptr<CivetServer> server_;
};

}  // namespace vmtime
