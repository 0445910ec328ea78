// ntpd collector: mode 6 client socket, exchange with resend and deadline,
// and the system/peer reads (see the header).
#include "exporter/collectors/ntpd/ntpd_collector.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <random>

namespace vmtime {
namespace {

constexpr size_t kMaxDatagram = 2048;
constexpr size_t kMaxPeers = 256;

Result<std::pair<std::string, std::string>> SplitHostPort(const std::string& a) {
  if (a.empty()) return Error{"empty address"};
  if (a[0] == '[') {
    const auto close = a.find(']');
    if (close == std::string::npos) return Error{"missing ']' in \"" + a + "\""};
    std::string host = a.substr(1, close - 1);
    if (close + 1 == a.size()) return std::make_pair(host, std::string("123"));
    if (a[close + 1] != ':' || close + 2 >= a.size()) {
      return Error{"expected ':port' after ']' in \"" + a + "\""};
    }
    return std::make_pair(host, a.substr(close + 2));
  }
  const auto colon = a.find(':');
  if (colon == std::string::npos) return std::make_pair(a, std::string("123"));
  if (a.find(':', colon + 1) != std::string::npos) return std::make_pair(a, std::string("123"));
  if (colon + 1 >= a.size()) return Error{"empty port in \"" + a + "\""};
  return std::make_pair(a.substr(0, colon), a.substr(colon + 1));
}

std::string OpName(uint8_t opcode) {
  return opcode == ntpd::kOpReadStatus ? "READSTAT" : "READVAR";
}

}  // namespace

Mode6Client::Mode6Client(std::string address, double request_timeout_s)
    : address_(std::move(address)), request_timeout_s_(request_timeout_s) {
  std::random_device rd;
  sequence_ = static_cast<uint16_t>(rd());
}

Mode6Client::~Mode6Client() { Close(); }

void Mode6Client::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status Mode6Client::Open() {
  Close();
  auto hp = SplitHostPort(address_);
  if (!hp) return Error{"ntpd: bad address: " + hp.error().message};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(hp->first.c_str(), hp->second.c_str(), &hints, &res);
  if (rc != 0) return Error{"ntpd: resolve \"" + address_ + "\": " + ::gai_strerror(rc)};
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
  if (fd_ < 0) return Error{"ntpd: connect udp " + address_ + ": " + std::strerror(last_err)};
  return Status::Ok();
}

Result<Mode6Client::Answer> Mode6Client::Exchange(uint8_t opcode, uint16_t association_id,
                                                  std::string_view request_data, const Clock& clock,
                                                  int64_t deadline_mono_ns) {
  if (fd_ < 0) {
    if (Status s = Open(); !s) return s.error();
  }
  const uint16_t sequence = ++sequence_;
  const std::string where =
      "ntpd " + address_ + ": " + OpName(opcode) + " association " + std::to_string(association_id);
  const int64_t start = clock.MonotonicNs();
  const int64_t deadline =
      std::min(deadline_mono_ns, start + SecondsToNs(std::max(request_timeout_s_, 0.001)));
  const int64_t resend_every = std::max<int64_t>((deadline - start) / 3, 1'000'000);
  const auto request = ntpd::BuildRequest(opcode, sequence, association_id, request_data);
  ntpd::Reassembly reassembly(opcode, sequence, association_id);
  std::string last_reject;
  int64_t next_send = start;
  while (true) {
    const int64_t now = clock.MonotonicNs();
    if (now >= deadline) {
      std::string msg = where + ": no answer within " +
                        std::to_string(NsToSeconds(deadline - start)).substr(0, 5) +
                        " s (ntpd not running there, or `restrict ... noquery`)";
      if (!last_reject.empty()) msg += "; last discarded datagram: " + last_reject;
      return Error{msg};
    }
    if (now >= next_send) {
      if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) < 0) {
        const int err = errno;
        Close();
        if (err == ECONNREFUSED) return Error{where + ": refused (ICMP port unreachable)"};
        return Error{where + ": send: " + std::strerror(err)};
      }
      next_send = now + resend_every;
    }
    pollfd p{fd_, POLLIN, 0};
    const int64_t left = std::min(deadline, next_send) - now;
    const int pr =
        ::poll(&p, 1, static_cast<int>(std::max<int64_t>((left + 999'999) / 1'000'000, 1)));
    if (pr < 0 && errno != EINTR) return Error{where + ": poll: " + std::strerror(errno)};
    if (pr <= 0) continue;
    uint8_t buf[kMaxDatagram];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EINTR) continue;
      Close();
      if (err == ECONNREFUSED) return Error{where + ": refused (ICMP port unreachable)"};
      return Error{where + ": receive: " + std::strerror(err)};
    }
    auto outcome =
        reassembly.Add(std::span<const uint8_t>(buf, static_cast<size_t>(n)), &last_reject);
    if (!outcome) return Error{where + ": " + outcome.error().message};
    if (*outcome == ntpd::Reassembly::Outcome::kComplete) {
      return Answer{reassembly.data(), reassembly.status()};
    }
  }
}

Result<NtpdObservation> ReadNtpd(Mode6Client& client, bool with_peers, const Clock& clock,
                                 int64_t deadline_mono_ns) {
  NtpdObservation obs;
  auto sys = client.Exchange(ntpd::kOpReadVariables, 0, "", clock, deadline_mono_ns);
  if (!sys) return sys.error();
  obs.measured_real_ns = clock.RealtimeNs();
  auto vars = ntpd::ParseVariables(sys->data);
  if (!vars) return Error{"ntpd: READVAR association 0: " + vars.error().message};
  auto s = ntpd::SystemFromVariables(*vars);
  if (!s) return Error{"ntpd: READVAR association 0: " + s.error().message};
  obs.leap = s->leap;
  obs.stratum = s->stratum;
  obs.refid = s->refid;
  obs.offset_s = s->offset_s;
  obs.sys_jitter_s = s->sys_jitter_s;
  obs.root_delay_s = s->root_delay_s;
  obs.root_dispersion_s = s->root_dispersion_s;
  obs.version = s->version;
  if (!with_peers) return obs;
  auto list = client.Exchange(ntpd::kOpReadStatus, 0, "", clock, deadline_mono_ns);
  if (!list) return list.error();
  auto assocs = ntpd::ParseAssociationList(list->data);
  if (!assocs) return Error{"ntpd: READSTAT: " + assocs.error().message};
  if (assocs->size() > kMaxPeers) assocs->resize(kMaxPeers);
  for (const auto& a : *assocs) {
    auto pv = client.Exchange(ntpd::kOpReadVariables, a.id, "", clock, deadline_mono_ns);
    if (!pv) {
      // The association went away between the list and the read.
      if (pv.error().message.find("unknown association") != std::string::npos) continue;
      return pv.error();
    }
    const std::string where = "ntpd: READVAR association " + std::to_string(a.id) + ": ";
    auto pvars = ntpd::ParseVariables(pv->data);
    if (!pvars) return Error{where + pvars.error().message};
    auto p = ntpd::PeerFromVariables(*pvars);
    if (!p) return Error{where + p.error().message};
    const ntpd::PeerStatus st = ntpd::DecodePeerStatus(pv->status);
    NtpdPeer peer;
    peer.association_id = a.id;
    peer.address = p->address;
    peer.configured = st.configured;
    peer.reachable = st.reachable;
    peer.selection = st.selection;
    peer.condition = std::string(ntpd::SelectionName(st.selection));
    peer.stratum = p->stratum;
    peer.reach = p->reach;
    peer.refid = p->refid;
    peer.offset_s = p->offset_s;
    peer.delay_s = p->delay_s;
    peer.jitter_s = p->jitter_s;
    obs.peers.push_back(std::move(peer));
  }
  return obs;
}

NtpdCollector::NtpdCollector(const NtpdConfig& config)
    : config_(config), client_(config.address, config.timeout_s) {}

Status NtpdCollector::Collect(const CollectContext& ctx, Observations& out) {
  try {
    int64_t deadline = ctx.deadline_mono_ns;
    if (deadline <= 0) {
      deadline = ctx.clock.MonotonicNs() + SecondsToNs(std::max(config_.timeout_s, 0.001) * 8);
    }
    auto obs = ReadNtpd(client_, config_.peers, ctx.clock, deadline);
    if (!obs) {
      client_.Close();  // a fresh socket next time
      return obs.error();
    }
    out.ntpd = std::move(*obs);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Error{std::string("ntpd: unexpected error: ") + e.what()};
  } catch (...) {
    return Error{"ntpd: unexpected error"};
  }
}

}  // namespace vmtime
