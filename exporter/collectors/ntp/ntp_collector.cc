// ntp collector: concurrent SNTP probes with per-probe deadlines (see the
// header).
#include "exporter/collectors/ntp/ntp_collector.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>

#include "exporter/collectors/ntp/ntp_packet.h"

namespace vmtime {
namespace {

struct Probe {
  NtpServerObservation* obs = nullptr;
  int fd = -1;
  uint64_t transmit = 0;  // random bits as sent; the reply must echo them as origin
  uint64_t t1 = 0;        // host clock at the send (NTP format), kept locally
  int64_t deadline = 0;   // monotonic ns
  bool done = false;
  std::string last_reject;  // why the last received datagram was discarded
};

Result<std::pair<std::string, std::string>> SplitServer(const std::string& s) {
  if (s.empty()) return Error{"empty server address"};
  if (s[0] == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos) return Error{"missing ']'"};
    std::string host = s.substr(1, close - 1);
    if (close + 1 == s.size()) return std::make_pair(host, std::string("123"));
    if (s[close + 1] != ':' || close + 2 >= s.size()) return Error{"expected ':port' after ']'"};
    return std::make_pair(host, s.substr(close + 2));
  }
  const auto colon = s.find(':');
  if (colon == std::string::npos) return std::make_pair(s, std::string("123"));
  if (s.find(':', colon + 1) != std::string::npos) return std::make_pair(s, std::string("123"));
  if (colon + 1 >= s.size()) return Error{"empty port"};
  return std::make_pair(s.substr(0, colon), s.substr(colon + 1));
}

std::string Seconds3(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", s);
  return buf;
}

// Opens a connected UDP socket to `server`; returns the fd or an error.
Result<int> OpenSocket(const std::string& server) {
  auto hp = SplitServer(server);
  if (!hp) return Error{"bad server address: " + hp.error().message};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(hp->first.c_str(), hp->second.c_str(), &hints, &res);
  if (rc != 0) return Error{std::string("resolve: ") + ::gai_strerror(rc)};
  int fd = -1;
  int last_err = 0;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      last_err = errno;
      continue;
    }
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    last_err = errno;
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) return Error{std::string("connect: ") + std::strerror(last_err)};
  return fd;
}

void Finish(Probe& p) {
  p.done = true;
  if (p.fd >= 0) ::close(p.fd);
  p.fd = -1;
}

// Handles one datagram for `p`; marks it done when it is a final outcome.
void HandleDatagram(Probe& p, std::span<const uint8_t> data, int64_t t4_real_ns) {
  auto reply = ntp::ParseNtpPacket(data, p.transmit);
  if (!reply) {
    p.last_reject = reply.error().message;
    return;  // keep waiting: a stale duplicate or junk must not end the probe
  }
  NtpServerObservation& o = *p.obs;
  const ntp::NtpReply& r = *reply;
  o.measured_real_ns = t4_real_ns;
  o.stratum = r.stratum;
  o.leap = r.leap;
  o.root_delay_s = r.root_delay_s;
  o.root_dispersion_s = r.root_dispersion_s;
  o.reference_id = r.reference_id;
  o.precision_log2 = r.precision_log2;
  if (!r.kiss_code.empty()) {
    o.kiss_code = r.kiss_code;
    o.reachable = false;
    o.usable = false;
    o.error = "kiss-o'-death " + r.kiss_code;
    Finish(p);
    return;
  }
  const ntp::NtpTiming timing = ntp::ComputeTiming(r, p.t1, ntp::UnixNsToNtp(t4_real_ns));
  o.offset_s = timing.offset_s;
  o.delay_s = timing.delay_s;
  o.reachable = true;
  Finish(p);
}

// Step 1: resolves and opens one socket per server (name lookups may take a
// while, so all of this comes before any request is sent). A server that
// cannot be opened is done, with the reason.
std::vector<Probe> OpenProbes(std::vector<NtpServerObservation>& out, const Clock& clock) {
  std::vector<Probe> probes(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    probes[i].obs = &out[i];
    auto fd = OpenSocket(out[i].server);
    if (!fd) {
      out[i].error = fd.error().message;
      out[i].measured_real_ns = clock.RealtimeNs();
      probes[i].done = true;
      continue;
    }
    probes[i].fd = *fd;
  }
  return probes;
}

// Step 2: sends every request back to back, so no probe's round trip
// includes another's setup; each probe's deadline starts at its send.
void SendRequests(std::vector<Probe>& probes, const Clock& clock, int64_t timeout_ns,
                  int64_t deadline_mono_ns) {
  for (Probe& p : probes) {
    if (p.done) continue;
    p.deadline = clock.MonotonicNs() + timeout_ns;
    if (deadline_mono_ns > 0) p.deadline = std::min(p.deadline, deadline_mono_ns);
    p.transmit = ntp::RandomTransmitBits();
    const std::vector<uint8_t> req = ntp::BuildNtpRequest(p.transmit);
    const int64_t t1 = clock.RealtimeNs();
    p.t1 = ntp::UnixNsToNtp(t1);
    if (::send(p.fd, req.data(), req.size(), 0) < 0) {
      p.obs->error = std::string("send: ") + std::strerror(errno);
      p.obs->measured_real_ns = t1;
      Finish(p);
    }
  }
}

// Ends a probe whose deadline passed without a valid reply.
void Expire(Probe& p, int64_t timeout_ns, const Clock& clock) {
  p.obs->error =
      "timeout: no valid reply within " + Seconds3(NsToSeconds(std::max<int64_t>(timeout_ns, 0)));
  if (!p.last_reject.empty()) p.obs->error += " (last reply rejected: " + p.last_reject + ")";
  p.obs->measured_real_ns = clock.RealtimeNs();
  Finish(p);
}

// Reads every datagram queued for `p`, until it is done or none is left.
void Drain(Probe& p, const Clock& clock) {
  while (!p.done) {
    uint8_t buf[512];
    const ssize_t n = ::recv(p.fd, buf, sizeof buf, 0);
    const int64_t t4 = clock.RealtimeNs();
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      const int err = errno;
      p.obs->error = std::string("receive: ") + std::strerror(err);
      if (err == ECONNREFUSED) p.obs->error += " (no NTP server on that port)";
      p.obs->measured_real_ns = t4;
      Finish(p);
      return;
    }
    HandleDatagram(p, std::span<const uint8_t>(buf, static_cast<size_t>(n)), t4);
  }
}

// Step 3: waits with poll() until every probe has its reply or its deadline.
void AwaitReplies(std::vector<Probe>& probes, const Clock& clock, int64_t timeout_ns) {
  while (true) {
    std::vector<pollfd> pfds;
    std::vector<Probe*> waiting;
    const int64_t now = clock.MonotonicNs();
    int64_t next_deadline = INT64_MAX;
    for (Probe& p : probes) {
      if (p.done) continue;
      if (now >= p.deadline) {
        Drain(p, clock);  // what is already queued still counts (or names its rejection)
        if (!p.done) Expire(p, timeout_ns, clock);
        continue;
      }
      next_deadline = std::min(next_deadline, p.deadline);
      pfds.push_back({p.fd, POLLIN, 0});
      waiting.push_back(&p);
    }
    if (pfds.empty()) return;
    const int64_t wait_ns = next_deadline - now;
    const int wait_ms =
        static_cast<int>(std::clamp<int64_t>((wait_ns + 999'999) / 1'000'000, 1, 60'000));
    const int pr = ::poll(pfds.data(), pfds.size(), wait_ms);
    if (pr < 0 && errno != EINTR) {
      const std::string err = std::string("poll: ") + std::strerror(errno);
      for (Probe* p : waiting) {
        p->obs->error = err;
        Finish(*p);
      }
      return;
    }
    if (pr <= 0) continue;
    for (size_t k = 0; k < pfds.size(); ++k) {
      if (pfds[k].revents != 0) Drain(*waiting[k], clock);
    }
  }
}

}  // namespace

void JudgeNtpServer(NtpServerObservation& o, int max_stratum) {
  if (!o.reachable) return;
  o.usable = false;
  if (o.leap == 3) {
    o.error = "unsynchronised (leap indicator 3)";
  } else if (o.stratum <= 0 || o.stratum >= 16) {
    o.error = "unsynchronised (stratum " + std::to_string(o.stratum) + ")";
  } else if (o.stratum > max_stratum) {
    o.error = "stratum " + std::to_string(o.stratum) + " above ntp.max_stratum " +
              std::to_string(max_stratum) + " (a server serving its local clock?)";
  } else {
    o.usable = true;
    o.error.clear();
  }
}

std::vector<NtpServerObservation> ProbeNtpServers(const NtpConfig& config, const Clock& clock,
                                                  int64_t deadline_mono_ns) {
  std::vector<NtpServerObservation> out(config.servers.size());
  for (size_t i = 0; i < out.size(); ++i) out[i].server = config.servers[i];
  const int64_t timeout_ns = SecondsToNs(std::max(config.timeout_s, 0.001));
  std::vector<Probe> probes = OpenProbes(out, clock);
  SendRequests(probes, clock, timeout_ns, deadline_mono_ns);
  AwaitReplies(probes, clock, timeout_ns);
  for (auto& o : out) JudgeNtpServer(o, config.max_stratum);
  return out;
}

NtpCollector::NtpCollector(const NtpConfig& config) : config_(config) {}

Status NtpCollector::Collect(const CollectContext& ctx, Observations& out) {
  try {
    NtpObservation obs;
    obs.servers = ProbeNtpServers(config_, ctx.clock, ctx.deadline_mono_ns);
    std::string failures;
    size_t usable = 0;
    for (const auto& s : obs.servers) {
      if (s.usable) {
        ++usable;
      } else {
        if (!failures.empty()) failures += "; ";
        failures += s.server + ": " + s.error;
      }
    }
    out.ntp = std::move(obs);
    if (!config_.servers.empty() && usable == 0) {
      return Error{"ntp: no usable server: " + failures};
    }
    return Status::Ok();
  } catch (const std::exception& e) {
    return Error{std::string("ntp: unexpected error: ") + e.what()};
  } catch (...) {
    return Error{"ntp: unexpected error"};
  }
}

}  // namespace vmtime
