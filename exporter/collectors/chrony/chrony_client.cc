// ChronyClient: socket handling, request/reply exchange with sequence check,
// resend and deadlines, and the tracking/sources queries (see the header).
#include "exporter/collectors/chrony/chrony_client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

namespace vmtime::chrony {
namespace {

constexpr std::string_view kUnixScheme = "unix://";
constexpr const char* kDefaultPort = "323";
constexpr size_t kMaxReply = 1024;

std::atomic<uint32_t> client_counter{0};

std::string DirOf(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Splits "host:port", "[v6]:port" or "host" into host and port.
Result<std::pair<std::string, std::string>> SplitHostPort(const std::string& a) {
  if (a.empty()) return Error{"empty address"};
  if (a[0] == '[') {
    const auto close = a.find(']');
    if (close == std::string::npos) return Error{"missing ']' in \"" + a + "\""};
    std::string host = a.substr(1, close - 1);
    if (close + 1 == a.size()) return std::make_pair(host, std::string(kDefaultPort));
    if (a[close + 1] != ':') return Error{"expected ':' after ']' in \"" + a + "\""};
    return std::make_pair(host, a.substr(close + 2));
  }
  const auto colon = a.find(':');
  if (colon == std::string::npos) return std::make_pair(a, std::string(kDefaultPort));
  if (a.find(':', colon + 1) != std::string::npos) {
    return std::make_pair(a, std::string(kDefaultPort));  // bare IPv6
  }
  return std::make_pair(a.substr(0, colon), a.substr(colon + 1));
}

}  // namespace

ChronyClient::ChronyClient(std::string address, double request_timeout_s)
    : address_(std::move(address)), request_timeout_s_(request_timeout_s) {
  std::random_device rd;
  sequence_ = rd();
}

ChronyClient::~ChronyClient() { Close(); }

void ChronyClient::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!client_path_.empty()) ::unlink(client_path_.c_str());
  client_path_.clear();
}

std::string ChronyClient::Describe(const std::string& what, int err) const {
  std::string msg = "chrony: " + what + ": " + std::strerror(err);
  const bool is_unix = address_.rfind(kUnixScheme, 0) == 0;
  if (is_unix && (err == EACCES || err == EPERM)) {
    const std::string dir = DirOf(address_.substr(kUnixScheme.size()));
    msg += " (the exporter's user must be able to write to " + dir + "; see docs/chrony.md)";
  } else if (is_unix && (err == ENOENT || err == ECONNREFUSED)) {
    msg += " (is chronyd running with this command socket?)";
  } else if (err == ECONNREFUSED) {
    msg += " (is chronyd running, with cmdport open and `cmdallow` for this host?)";
  }
  return msg;
}

Status ChronyClient::Open() {
  Close();
  if (address_.rfind(kUnixScheme, 0) == 0) {
    const std::string server_path = address_.substr(kUnixScheme.size());
    sockaddr_un server{};
    server.sun_family = AF_UNIX;
    if (server_path.empty() || server_path.size() >= sizeof(server.sun_path)) {
      return Error{"chrony: bad unix socket path in \"" + address_ + "\""};
    }
    std::memcpy(server.sun_path, server_path.c_str(), server_path.size() + 1);
    const std::string path = DirOf(server_path) + "/vmtime-exporter." + std::to_string(::getpid()) +
                             "." + std::to_string(client_counter.fetch_add(1)) + ".sock";
    sockaddr_un local{};
    local.sun_family = AF_UNIX;
    if (path.size() >= sizeof(local.sun_path)) {
      return Error{"chrony: client socket path too long: " + path};
    }
    std::memcpy(local.sun_path, path.c_str(), path.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Error{Describe("socket(AF_UNIX)", errno)};
    ::unlink(path.c_str());  // a leftover of a crashed run with the same pid
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
      const int err = errno;
      Close();
      return Error{Describe("bind client socket unix://" + path, err)};
    }
    client_path_ = path;
    // chronyd usually runs as another user and must be able to send to us.
    if (::chmod(path.c_str(), 0666) != 0) {
      const int err = errno;
      Close();
      return Error{Describe("chmod client socket " + path, err)};
    }
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) {
      const int err = errno;
      Close();
      return Error{Describe("connect " + address_, err)};
    }
    return Status::Ok();
  }
  auto hp = SplitHostPort(address_);
  if (!hp) return Error{"chrony: bad address: " + hp.error().message};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(hp->first.c_str(), hp->second.c_str(), &hints, &res);
  if (rc != 0) {
    return Error{"chrony: resolve \"" + address_ + "\": " + ::gai_strerror(rc)};
  }
  int last_err = 0;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    fd_ = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd_ < 0) {
      last_err = errno;
      continue;
    }
    if (::connect(fd_, ai->ai_addr, ai->ai_addrlen) == 0) break;
    last_err = errno;
    ::close(fd_);
    fd_ = -1;
  }
  ::freeaddrinfo(res);
  if (fd_ < 0) return Error{Describe("connect udp " + address_, last_err)};
  return Status::Ok();
}

Result<std::vector<uint8_t>> ChronyClient::Exchange(uint16_t command, std::span<const uint8_t> data,
                                                    const Clock& clock, int64_t deadline_mono_ns) {
  if (fd_ < 0) {
    if (Status s = Open(); !s) return s.error();
  }
  const uint32_t sequence = ++sequence_;
  const int64_t start = clock.MonotonicNs();
  const int64_t deadline =
      std::min(deadline_mono_ns, start + SecondsToNs(std::max(request_timeout_s_, 0.001)));
  const int64_t resend_every = std::max<int64_t>((deadline - start) / 3, 1'000'000);
  const std::string where = "command " + std::to_string(command) + " to " + address_;
  for (uint16_t attempt = 0;; ++attempt) {
    const int64_t now = clock.MonotonicNs();
    if (now >= deadline) {
      return Error{"chrony: no reply to " + where + " within " +
                   std::to_string(NsToSeconds(deadline - start)).substr(0, 5) +
                   " s (is chronyd running? can it write to the client socket?)"};
    }
    const std::vector<uint8_t> req = BuildRequest(command, sequence, attempt, data);
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) < 0) {
      const int err = errno;
      Close();
      return Error{Describe("send " + where, err)};
    }
    const int64_t attempt_end = std::min(deadline, now + resend_every);
    while (true) {
      const int64_t left = attempt_end - clock.MonotonicNs();
      if (left <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      const int timeout_ms =
          static_cast<int>(std::min<int64_t>((left + 999'999) / 1'000'000, 1'000'000));
      const int pr = ::poll(&p, 1, timeout_ms);
      if (pr < 0) {
        if (errno == EINTR) continue;
        return Error{Describe("poll " + where, errno)};
      }
      if (pr == 0) continue;
      uint8_t buf[kMaxReply];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        const int err = errno;
        Close();
        return Error{Describe("receive reply to " + where, err)};
      }
      auto h = ParseReplyHeader(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
      if (!h || h->sequence != sequence || h->pkt_type != kPktTypeReply) continue;  // stray
      return std::vector<uint8_t>(buf, buf + n);
    }
  }
}

Result<ChronyTracking> ChronyClient::Tracking(const Clock& clock, int64_t deadline_mono_ns) {
  auto r = Exchange(kReqTracking, {}, clock, deadline_mono_ns);
  if (!r) return r.error();
  auto t = ParseTrackingReply(*r);
  if (!t) return Error{"chrony: " + address_ + ": " + t.error().message};
  return t;
}

Result<std::vector<ChronySource>> ChronyClient::Sources(const Clock& clock,
                                                        int64_t deadline_mono_ns) {
  auto nr = Exchange(kReqNSources, {}, clock, deadline_mono_ns);
  if (!nr) return nr.error();
  auto n = ParseNSourcesReply(*nr);
  if (!n) return Error{"chrony: " + address_ + ": " + n.error().message};
  if (*n > 4096)
    return Error{"chrony: " + address_ + ": implausible source count " + std::to_string(*n)};
  std::vector<ChronySource> out;
  for (uint32_t i = 0; i < *n; ++i) {
    uint8_t idx[4] = {static_cast<uint8_t>(i >> 24), static_cast<uint8_t>(i >> 16),
                      static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    auto sr = Exchange(kReqSourceData, idx, clock, deadline_mono_ns);
    if (!sr) return sr.error();
    auto sd = ParseSourceDataReply(*sr);
    if (!sd) {
      // The source list changed under us (a source was removed): skip it.
      auto h = ParseReplyHeader(*sr);
      if (h && h->status == kSttNoSuchSource) continue;
      return Error{"chrony: " + address_ + ": source " + std::to_string(i) + ": " +
                   sd.error().message};
    }
    ChronySource src = std::move(sd->source);
    auto str = Exchange(kReqSourcestats, idx, clock, deadline_mono_ns);
    if (!str) return str.error();
    if (auto st = ParseSourcestatsReply(*str);
        st && FormatIpAddr(st->address) == FormatIpAddr(sd->address)) {
      src.stats_frequency_ppm = st->resid_freq_ppm;
      src.stats_skew_ppm = st->skew_ppm;
      src.stats_std_dev_s = st->std_dev_s;
      src.stats_offset_s = st->est_offset_s;
      src.stats_samples = static_cast<int>(std::min<uint32_t>(st->samples, 1u << 30));
    }
    if (src.mode != 2 && sd->address.family != kFamilyUnspec) {
      uint8_t addr[20] = {};
      std::memcpy(addr, sd->address.bytes, 16);
      addr[16] = static_cast<uint8_t>(sd->address.family >> 8);
      addr[17] = static_cast<uint8_t>(sd->address.family);
      auto nm = Exchange(kReqNtpSourceName, addr, clock, deadline_mono_ns);
      if (!nm) return nm.error();
      if (auto name = ParseNtpSourceNameReply(*nm); name && !name->empty()) src.name = *name;
    }
    out.push_back(std::move(src));
  }
  return out;
}

}  // namespace vmtime::chrony
