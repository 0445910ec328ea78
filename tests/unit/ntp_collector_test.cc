// NTP server usability (JudgeNtpServer): leap, stratum and ntp.max_stratum;
// the request's random origin bits against a loopback UDP responder with a
// FakeClock. The probing is also run against a real UDP responder in
// tests/e2e/test_ntp_responder.py and against chronyd in
// tests/e2e/test_chrony_ntp.py.
#include "exporter/collectors/ntp/ntp_collector.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <thread>

#include "exporter/collectors/ntp/ntp_packet.h"

namespace vmtime {
namespace {

NtpServerObservation Answered(int stratum, int leap = 0) {
  NtpServerObservation o;
  o.server = "127.0.0.1:123";
  o.reachable = true;
  o.stratum = stratum;
  o.leap = leap;
  return o;
}

bool Usable(int stratum, int leap, int max_stratum) {
  NtpServerObservation o = Answered(stratum, leap);
  JudgeNtpServer(o, max_stratum);
  EXPECT_EQ(o.error.empty(), o.usable) << "stratum " << stratum << ": " << o.error;
  return o.usable;
}

TEST(JudgeNtpServer, UsableOnlyUpToMaxStratum) {
  const int kDefault = NtpConfig{}.max_stratum;
  EXPECT_EQ(kDefault, 9);
  EXPECT_TRUE(Usable(1, 0, kDefault));
  EXPECT_TRUE(Usable(4, 0, kDefault));
  EXPECT_TRUE(Usable(9, 0, kDefault));
  EXPECT_FALSE(Usable(10, 0, kDefault));  // `local stratum 10`
  EXPECT_FALSE(Usable(11, 0, kDefault));
  EXPECT_TRUE(Usable(11, 0, 11));
  EXPECT_FALSE(Usable(4, 0, 3));
}

TEST(JudgeNtpServer, LeapThreeAndStratumZeroOrSixteenAreUnsynchronised) {
  EXPECT_FALSE(Usable(2, 3, 9));
  EXPECT_FALSE(Usable(0, 0, 9));
  EXPECT_FALSE(Usable(16, 0, 15));
  EXPECT_TRUE(Usable(2, 1, 9));  // a leap second announced is still synchronised
}

TEST(JudgeNtpServer, ErrorsNameTheReason) {
  NtpServerObservation o = Answered(11);
  JudgeNtpServer(o, 9);
  EXPECT_EQ(o.error, "stratum 11 above ntp.max_stratum 9 (a server serving its local clock?)");
  o = Answered(16);
  JudgeNtpServer(o, 9);
  EXPECT_EQ(o.error, "unsynchronised (stratum 16)");
  o = Answered(2, 3);
  JudgeNtpServer(o, 9);
  EXPECT_EQ(o.error, "unsynchronised (leap indicator 3)");
}

TEST(JudgeNtpServer, LeavesServersThatDidNotAnswerAlone) {
  NtpServerObservation o;
  o.reachable = false;
  o.error = "kiss-o'-death RATE";
  o.kiss_code = "RATE";
  JudgeNtpServer(o, 9);
  EXPECT_FALSE(o.usable);
  EXPECT_EQ(o.error, "kiss-o'-death RATE");
}

// ---- origin bits ----

uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

void Put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
}

// A one-request SNTP responder on 127.0.0.1 (an ephemeral port). It
// answers with `origin(request transmit)` as the origin timestamp and the
// fake clock as its own time. With `expire_after_reply` it then moves the
// fake clock past the probe's deadline and sends the same reply again, so
// the probe ends with the reason the replies were rejected.
class Responder {
 public:
  Responder(FakeClock& clock, std::function<uint64_t(uint64_t)> origin, bool expire_after_reply)
      : clock_(clock), origin_(std::move(origin)), expire_(expire_after_reply) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~Responder() {
    thread_.join();
    ::close(fd_);
  }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
  uint64_t request_transmit() const { return request_transmit_; }

 private:
  void Serve() {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 10'000) != 1) return;  // bounded: the test fails, never hangs
    uint8_t req[64];
    sockaddr_in from{};
    socklen_t flen = sizeof from;
    const ssize_t n =
        ::recvfrom(fd_, req, sizeof req, 0, reinterpret_cast<sockaddr*>(&from), &flen);
    if (n != 48) return;
    request_transmit_ = Get64(req + 40);
    uint8_t rep[48] = {};
    rep[0] = (0 << 6) | (4 << 3) | 4;  // LI 0, VN 4, mode 4 (server)
    rep[1] = 2;                        // stratum
    const uint64_t now = ntp::UnixNsToNtp(clock_.RealtimeNs());
    Put64(rep + 16, now);
    Put64(rep + 24, origin_(request_transmit_));
    Put64(rep + 32, now);
    Put64(rep + 40, now);
    auto send = [&] {
      ::sendto(fd_, rep, sizeof rep, 0, reinterpret_cast<sockaddr*>(&from), flen);
    };
    send();
    if (!expire_) return;
    clock_.AdvanceSeconds(60);
    send();  // wakes the probe's poll after the deadline
  }

  FakeClock& clock_;
  std::function<uint64_t(uint64_t)> origin_;
  bool expire_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<uint64_t> request_transmit_{0};
  std::thread thread_;
};

NtpConfig OneServer(const std::string& server) {
  NtpConfig c;
  c.servers = {server};
  c.timeout_s = 1;
  return c;
}

TEST(NtpOrigin, RequestCarriesRandomBitsNotTheClockAndEchoIsAccepted) {
  FakeClock clock;
  const uint64_t clock_ntp = ntp::UnixNsToNtp(clock.RealtimeNs());
  uint64_t first_bits = 0;
  for (int round = 0; round < 2; ++round) {
    Responder r(
        clock, [](uint64_t transmit) { return transmit; }, false);
    auto obs = ProbeNtpServers(OneServer(r.server()), clock, 0);
    ASSERT_EQ(obs.size(), 1u);
    EXPECT_TRUE(obs[0].reachable) << obs[0].error;
    EXPECT_TRUE(obs[0].usable) << obs[0].error;
    // The offset comes from the host's own send time, kept locally: the
    // fake server's clock equals the host's, so it is zero.
    EXPECT_NEAR(obs[0].offset_s, 0.0, 1e-6);
    EXPECT_NEAR(obs[0].delay_s, 0.0, 1e-6);
    const uint64_t bits = r.request_transmit();
    EXPECT_NE(bits, 0u);
    // Not the clock (not even its seconds), and different every request.
    EXPECT_NE(bits >> 32, clock_ntp >> 32);
    if (round == 0) {
      first_bits = bits;
    } else {
      EXPECT_NE(bits, first_bits);
    }
  }
}

// A reply that echoes the host's clock (what a request carrying the clock
// would have been answered with) or any other bits is not ours: rejected,
// and the probe's error names why.
TEST(NtpOrigin, ReplyEchoingOtherBitsIsRejectedWithANamedError) {
  FakeClock clock;
  const uint64_t clock_ntp = ntp::UnixNsToNtp(clock.RealtimeNs());
  Responder r(
      clock, [clock_ntp](uint64_t) { return clock_ntp; }, true);
  auto obs = ProbeNtpServers(OneServer(r.server()), clock, 0);
  ASSERT_EQ(obs.size(), 1u);
  EXPECT_FALSE(obs[0].reachable);
  EXPECT_FALSE(obs[0].usable);
  char echoed[17];
  std::snprintf(echoed, sizeof echoed, "%016llx", static_cast<unsigned long long>(clock_ntp));
  char carried[17];
  std::snprintf(carried, sizeof carried, "%016llx",
                static_cast<unsigned long long>(r.request_transmit()));
  EXPECT_EQ(obs[0].error, std::string("timeout: no valid reply within 1.000 (last reply rejected: "
                                      "origin timestamp mismatch: the reply echoes ") +
                              echoed + ", our request carried " + carried +
                              " (not a reply to our request))");
}

}  // namespace
}  // namespace vmtime
