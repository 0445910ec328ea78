// Minimal HTTP/1.0 client for vmtime_zabbix_check: one GET over a plain TCP
// socket, with a deadline on connect and on the whole exchange, so a hung or
// unreachable exporter makes the check fail fast instead of stalling a
// Zabbix poller. No TLS (the exporter serves plain HTTP), no redirects, no
// keep-alive. Basic auth from the URL's userinfo (user:password@host).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "exporter/core/clock.h"
#include "exporter/core/result.h"

namespace vmtime::zabbix {

struct HttpUrl {
  std::string host;      // name, IPv4 literal or IPv6 literal (without brackets)
  std::string port;      // decimal, "80" when the URL has none
  std::string path;      // starts with '/'
  std::string userinfo;  // "user:password" or empty
};

// Parses "http://[userinfo@]host[:port][/path]". Errors name the URL and what
// is wrong with it ("https is not supported", "empty host", ...).
Result<HttpUrl> ParseHttpUrl(std::string_view url);

struct HttpResponse {
  int status = 0;            // e.g. 200
  std::string reason;        // e.g. "OK"
  std::string content_type;  // value of Content-Type, empty when absent
  std::string body;          // decoded (chunked transfer coding removed)
};

// Parses a complete raw response (status line, headers, body). A
// Content-Length longer than the data is an error (truncated response).
Result<HttpResponse> ParseHttpResponse(std::string_view raw);

struct HttpOptions {
  double connect_timeout_s = 1.0;  // per address tried
  double total_timeout_s = 2.5;    // connect + send + receive
  size_t max_response_bytes = 64 << 20;
};

// GET url.path from url.host:url.port. Time for the deadlines is read from
// `clock` (MonotonicNs); name resolution (getaddrinfo) is not bounded by
// them. Errors name the address and the failing step.
Result<HttpResponse> HttpGet(const HttpUrl& url, const HttpOptions& options, const Clock& clock);

// Standard base64 (RFC 4648, with padding), for the Authorization header.
std::string Base64Encode(std::string_view data);

}  // namespace vmtime::zabbix
