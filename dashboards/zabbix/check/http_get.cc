// See http_get.h.
#include "dashboards/zabbix/check/http_get.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>

namespace vmtime::zabbix {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool AllDigits(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

struct AddrInfoDeleter {
  void operator()(addrinfo* ai) const noexcept { freeaddrinfo(ai); }
};

// Milliseconds left until deadline_ns (monotonic), at least 0.
int MsLeft(const Clock& clock, int64_t deadline_ns) {
  int64_t left = deadline_ns - clock.MonotonicNs();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(left / 1'000'000 + 1, 1 << 30));
}

// Waits until fd is ready for `events` or the deadline passes. Returns false
// on timeout; errno-style failures are returned as false with *err set.
bool WaitFd(int fd, short events, const Clock& clock, int64_t deadline_ns, std::string* err) {
  for (;;) {
    int ms = MsLeft(clock, deadline_ns);
    if (ms == 0) {
      *err = "timed out";
      return false;
    }
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, ms);
    if (r > 0) return true;
    if (r == 0) continue;  // re-check the deadline
    if (errno == EINTR) continue;
    *err = std::string("poll: ") + std::strerror(errno);
    return false;
  }
}

std::string Endpoint(const HttpUrl& url) {
  if (url.host.find(':') != std::string::npos) return "[" + url.host + "]:" + url.port;
  return url.host + ":" + url.port;
}

// Connects to one address with a deadline. Returns the fd or an error text.
Result<int> ConnectOne(const addrinfo* ai, const Clock& clock, int64_t deadline_ns) {
  Fd fd(socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
  if (fd.get() < 0) return Error{std::string("socket: ") + std::strerror(errno)};
  if (connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) return fd.release();
  if (errno != EINPROGRESS) return Error{std::string("connect: ") + std::strerror(errno)};
  std::string err;
  if (!WaitFd(fd.get(), POLLOUT, clock, deadline_ns, &err)) return Error{"connect: " + err};
  int so_error = 0;
  socklen_t len = sizeof(so_error);
  if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) {
    return Error{std::string("getsockopt: ") + std::strerror(errno)};
  }
  if (so_error != 0) return Error{std::string("connect: ") + std::strerror(so_error)};
  return fd.release();
}

Result<std::string> DecodeChunked(std::string_view body) {
  std::string out;
  for (;;) {
    size_t eol = body.find("\r\n");
    if (eol == std::string_view::npos) return Error{"truncated chunked body (no chunk size line)"};
    std::string_view size_text = body.substr(0, eol);
    size_t semi = size_text.find(';');
    if (semi != std::string_view::npos) size_text = size_text.substr(0, semi);
    size_text = Trim(size_text);
    if (size_text.empty() || size_text.size() > 15) {
      return Error{"bad chunk size '" + std::string(size_text) + "'"};
    }
    size_t size = 0;
    for (char c : size_text) {
      int digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        return Error{"bad chunk size '" + std::string(size_text) + "'"};
      }
      size = size * 16 + static_cast<size_t>(digit);
    }
    body.remove_prefix(eol + 2);
    if (size == 0) return out;  // trailers ignored
    if (body.size() < size + 2) return Error{"truncated chunked body"};
    out.append(body.substr(0, size));
    body.remove_prefix(size + 2);
  }
}

}  // namespace

Result<HttpUrl> ParseHttpUrl(std::string_view url) {
  const std::string quoted = "'" + std::string(url) + "'";
  constexpr std::string_view kScheme = "http://";
  std::string lower = Lower(url.substr(0, std::min<size_t>(url.size(), 8)));
  if (lower.rfind("https://", 0) == 0) {
    return Error{"exporter URL " + quoted + ": https is not supported (use http://)"};
  }
  if (lower.rfind(kScheme, 0) != 0) {
    return Error{"exporter URL " + quoted + ": expected http://host[:port][/path]"};
  }
  std::string_view rest = url.substr(kScheme.size());
  HttpUrl out;
  size_t slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  out.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (out.path.front() != '/') out.path = "/" + out.path;
  size_t hash = out.path.find('#');
  if (hash != std::string::npos) out.path.resize(hash);
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    out.userinfo = std::string(authority.substr(0, at));
    authority.remove_prefix(at + 1);
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close_bracket = authority.find(']');
    if (close_bracket == std::string_view::npos) {
      return Error{"exporter URL " + quoted + ": unterminated IPv6 literal"};
    }
    out.host = std::string(authority.substr(1, close_bracket - 1));
    std::string_view after = authority.substr(close_bracket + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Error{"exporter URL " + quoted + ": junk after ']'"};
      port = after.substr(1);
    }
  } else {
    size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) return Error{"exporter URL " + quoted + ": empty host"};
  if (port.empty()) {
    out.port = "80";
  } else if (!AllDigits(port) || port.size() > 5 || std::stoi(std::string(port)) > 65535 ||
             std::stoi(std::string(port)) == 0) {
    return Error{"exporter URL " + quoted + ": bad port '" + std::string(port) + "'"};
  } else {
    out.port = std::string(port);
  }
  return out;
}

Result<HttpResponse> ParseHttpResponse(std::string_view raw) {
  size_t head_end = raw.find("\r\n\r\n");
  size_t sep = 4;
  if (head_end == std::string_view::npos) {
    head_end = raw.find("\n\n");
    sep = 2;
  }
  if (head_end == std::string_view::npos) {
    return Error{"truncated HTTP response (no end of headers in " + std::to_string(raw.size()) +
                 " bytes)"};
  }
  std::string_view head = raw.substr(0, head_end);
  std::string_view body = raw.substr(head_end + sep);
  size_t eol = head.find('\n');
  std::string_view status_line = Trim(head.substr(0, eol));
  HttpResponse out;
  if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12 || status_line[8] != ' ' ||
      !AllDigits(status_line.substr(9, 3))) {
    return Error{"not an HTTP response (status line '" + std::string(status_line.substr(0, 80)) +
                 "')"};
  }
  out.status = std::stoi(std::string(status_line.substr(9, 3)));
  out.reason = std::string(Trim(status_line.substr(12)));
  bool chunked = false;
  bool have_length = false;
  size_t content_length = 0;
  std::string_view headers = eol == std::string_view::npos ? "" : head.substr(eol + 1);
  while (!headers.empty()) {
    size_t line_end = headers.find('\n');
    std::string_view line = Trim(headers.substr(0, line_end));
    headers = line_end == std::string_view::npos ? "" : headers.substr(line_end + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name = Lower(Trim(line.substr(0, colon)));
    std::string_view value = Trim(line.substr(colon + 1));
    if (name == "content-type") {
      out.content_type = std::string(value);
    } else if (name == "content-length") {
      if (!AllDigits(value) || value.size() > 15) {
        return Error{"bad Content-Length '" + std::string(value) + "'"};
      }
      have_length = true;
      content_length = std::stoull(std::string(value));
    } else if (name == "transfer-encoding" && Lower(value).find("chunked") != std::string::npos) {
      chunked = true;
    }
  }
  if (chunked) {
    auto decoded = DecodeChunked(body);
    if (!decoded) return decoded.error();
    out.body = std::move(*decoded);
  } else if (have_length) {
    if (body.size() < content_length) {
      return Error{"truncated HTTP response (Content-Length " + std::to_string(content_length) +
                   ", got " + std::to_string(body.size()) + " bytes)"};
    }
    out.body = std::string(body.substr(0, content_length));
  } else {
    out.body = std::string(body);
  }
  return out;
}

Result<HttpResponse> HttpGet(const HttpUrl& url, const HttpOptions& options, const Clock& clock) {
  const std::string where = "http://" + Endpoint(url) + url.path;
  const int64_t total_deadline = clock.MonotonicNs() + SecondsToNs(options.total_timeout_s);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  addrinfo* raw_ai = nullptr;
  int gai = getaddrinfo(url.host.c_str(), url.port.c_str(), &hints, &raw_ai);
  if (gai != 0) {
    return Error{"cannot resolve '" + url.host + "' (" + gai_strerror(gai) + ") for " + where};
  }
  std::unique_ptr<addrinfo, AddrInfoDeleter> ai(raw_ai);

  std::string last_error = "no address";
  int fd_raw = -1;
  for (const addrinfo* a = ai.get(); a != nullptr; a = a->ai_next) {
    int64_t deadline =
        std::min(total_deadline, clock.MonotonicNs() + SecondsToNs(options.connect_timeout_s));
    auto fd = ConnectOne(a, clock, deadline);
    if (fd) {
      fd_raw = *fd;
      break;
    }
    last_error = fd.error().message;
  }
  if (fd_raw < 0) return Error{"cannot reach exporter at " + where + ": " + last_error};
  Fd fd(fd_raw);

  std::string request = "GET " + url.path + " HTTP/1.0\r\nHost: " + Endpoint(url) +
                        "\r\nUser-Agent: vmtime_zabbix_check\r\nAccept: application/json\r\n"
                        "Connection: close\r\n";
  if (!url.userinfo.empty()) {
    request += "Authorization: Basic " + Base64Encode(url.userinfo) + "\r\n";
  }
  request += "\r\n";
  size_t sent = 0;
  std::string err;
  while (sent < request.size()) {
    if (!WaitFd(fd.get(), POLLOUT, clock, total_deadline, &err)) {
      return Error{"sending request to " + where + ": " + err};
    }
    ssize_t n = send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return Error{"sending request to " + where + ": " + std::strerror(errno)};
    }
    sent += static_cast<size_t>(n);
  }

  std::string raw;
  char buf[16384];
  for (;;) {
    if (!WaitFd(fd.get(), POLLIN, clock, total_deadline, &err)) {
      return Error{"reading response from " + where + ": " + err + " after " +
                   std::to_string(raw.size()) + " bytes"};
    }
    ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return Error{"reading response from " + where + ": " + std::strerror(errno)};
    }
    if (n == 0) break;  // HTTP/1.0: the server closes after the body
    raw.append(buf, static_cast<size_t>(n));
    if (raw.size() > options.max_response_bytes) {
      return Error{"response from " + where + " exceeds " +
                   std::to_string(options.max_response_bytes) + " bytes"};
    }
  }
  auto response = ParseHttpResponse(raw);
  if (!response) return Error{"response from " + where + ": " + response.error().message};
  return response;
}

std::string Base64Encode(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(data[i]) << 16) | (static_cast<uint8_t>(data[i + 1]) << 8) |
                 static_cast<uint8_t>(data[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < data.size()) {
    uint32_t v = static_cast<uint8_t>(data[i]) << 16;
    if (i + 1 < data.size()) v |= static_cast<uint8_t>(data[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < data.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace vmtime::zabbix
