// ntpd mode 6: the pure message functions with crafted packets (header
// checks, fragment reassembly in any order, error responses, hostile
// fragments, the association list, the READVAR text and the variables the
// client reads), and the client against a crafted UDP responder on
// loopback (fragments, stray sequences, error bit, silence, refused).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "exporter/collectors/ntpd/mode6.h"
#include "exporter/collectors/ntpd/ntpd_collector.h"
#include "exporter/core/clock.h"

namespace vmtime::ntpd {
namespace {

// One response datagram.
std::vector<uint8_t> Response(uint16_t sequence, uint16_t offset, std::string_view data, bool more,
                              uint8_t opcode = kOpReadVariables, uint16_t status = 0x0618,
                              bool error = false, uint16_t association = 0) {
  std::vector<uint8_t> b = BuildRequest(opcode, sequence, association, data);
  b[1] = static_cast<uint8_t>(0x80 | (error ? 0x40 : 0) | (more ? 0x20 : 0) | opcode);
  b[4] = static_cast<uint8_t>(status >> 8);
  b[5] = static_cast<uint8_t>(status);
  b[8] = static_cast<uint8_t>(offset >> 8);
  b[9] = static_cast<uint8_t>(offset);
  return b;
}

constexpr std::string_view kSystem =
    "version=\"ntpd ntpsec-1.2.2\", leap=0, stratum=2, precision=-24,\r\n"
    "rootdelay=0.120, rootdisp=1.500, refid=127.0.0.2, offset=-0.250,\r\n"
    "sys_jitter=0.004, clk_jitter=0.002, tai=37";

TEST(Mode6, RequestHeader) {
  const auto b = BuildRequest(kOpReadVariables, 0x1234, 7, "leap");
  ASSERT_EQ(b.size(), 16u);
  EXPECT_EQ(b[0], 0x16);  // LI 0, version 2, mode 6
  EXPECT_EQ(b[1], 2);
  EXPECT_EQ(b[2], 0x12);
  EXPECT_EQ(b[3], 0x34);
  EXPECT_EQ(b[7], 7);
  EXPECT_EQ(b[11], 4);
  EXPECT_EQ(BuildRequest(kOpReadStatus, 1, 0).size(), 12u);
  EXPECT_EQ(BuildRequest(kOpReadVariables, 1, 0, "stratum").size(), 20u);  // padded to 4
}

TEST(Mode6, HeaderChecksNameWhatIsWrong) {
  const uint8_t short_reply[5] = {0x16, 0x82, 0, 0, 0};
  EXPECT_NE(ParseHeader(short_reply).error().message.find("shorter than the 12-octet"),
            std::string::npos);
  auto b = Response(1, 0, "leap=0", false);
  b[0] = 0x14;  // mode 4
  EXPECT_NE(ParseHeader(b).error().message.find("mode 4"), std::string::npos);
  b = Response(1, 0, "leap=0", false);
  b[1] &= 0x7f;  // a request, not a response
  EXPECT_NE(ParseHeader(b).error().message.find("response bit"), std::string::npos);
  b = Response(1, 0, "leap=0", false);
  b[11] = 200;  // count beyond the datagram
  EXPECT_NE(ParseHeader(b).error().message.find("count 200"), std::string::npos);
  b = Response(1, 0, "leap=0", false);
  b[8] = 0xff;  // offset far beyond any response
  EXPECT_NE(ParseHeader(b).error().message.find("offset"), std::string::npos);
}

TEST(Mode6, OneFragment) {
  Reassembly r(kOpReadVariables, 9, 0);
  auto out = r.Add(Response(9, 0, kSystem, false));
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(*out, Reassembly::Outcome::kComplete);
  EXPECT_EQ(r.data(), kSystem);
  EXPECT_EQ(r.status(), 0x0618);
}

TEST(Mode6, FragmentsOutOfOrderWithDuplicatesAndStrays) {
  const std::string text(kSystem);
  Reassembly r(kOpReadVariables, 9, 0);
  std::string why;
  EXPECT_EQ(*r.Add(Response(9, 100, text.substr(100), false)), Reassembly::Outcome::kIncomplete);
  EXPECT_EQ(*r.Add(Response(8, 0, "stale", false), &why), Reassembly::Outcome::kNotOurs);
  EXPECT_NE(why.find("sequence 8"), std::string::npos);
  EXPECT_EQ(*r.Add(Response(9, 50, text.substr(50, 50), true)), Reassembly::Outcome::kIncomplete);
  EXPECT_EQ(*r.Add(Response(9, 50, text.substr(50, 50), true)), Reassembly::Outcome::kIncomplete);
  EXPECT_EQ(*r.Add(Response(9, 0, text.substr(0, 50), true)), Reassembly::Outcome::kComplete);
  EXPECT_EQ(r.data(), text);
}

TEST(Mode6, ErrorResponsesAreNamed) {
  Reassembly r(kOpReadVariables, 3, 0);
  auto out = r.Add(Response(3, 0, "", false, kOpReadVariables, 0x0700, true));
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message.find("restricted"), std::string::npos);
  Reassembly a(kOpReadVariables, 3, 0);
  out = a.Add(Response(3, 0, "", false, kOpReadVariables, 0x0100, true));
  EXPECT_NE(out.error().message.find("authentication"), std::string::npos);
  Reassembly u(kOpReadVariables, 3, 5);
  out = u.Add(Response(3, 0, "", false, kOpReadVariables, 0x0400, true, 5));
  EXPECT_NE(out.error().message.find("unknown association"), std::string::npos);
}

TEST(Mode6, HostileFragmentsAreErrors) {
  Reassembly overlap(kOpReadVariables, 1, 0);
  ASSERT_TRUE(overlap.Add(Response(1, 0, std::string(40, 'a'), true)).ok());
  auto out = overlap.Add(Response(1, 20, std::string(40, 'b'), false));
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message.find("fragment at offset 20: overlaps"), std::string::npos);

  Reassembly two_last(kOpReadVariables, 1, 0);
  ASSERT_TRUE(two_last.Add(Response(1, 40, "x", false)).ok());
  out = two_last.Add(Response(1, 80, "y", false));
  EXPECT_NE(out.error().message.find("second last fragment"), std::string::npos);

  Reassembly beyond(kOpReadVariables, 1, 0);
  ASSERT_TRUE(beyond.Add(Response(1, 0, "abcd", false)).ok() == true);
  Reassembly after(kOpReadVariables, 1, 0);
  ASSERT_TRUE(after.Add(Response(1, 8, "abcd", false)).ok());
  out = after.Add(Response(1, 12, "efgh", true));
  EXPECT_NE(out.error().message.find("beyond the last fragment"), std::string::npos);

  Reassembly wrong_assoc(kOpReadVariables, 1, 7);
  out = wrong_assoc.Add(Response(1, 0, "srcadr=1.2.3.4", false, kOpReadVariables, 0, false, 8));
  EXPECT_NE(out.error().message.find("association 8"), std::string::npos);

  Reassembly many(kOpReadVariables, 1, 0);
  Result<Reassembly::Outcome> last = Reassembly::Outcome::kIncomplete;
  for (uint16_t i = 0; i <= kMaxFragments && last.ok(); ++i) {
    last = many.Add(Response(1, static_cast<uint16_t>(i * 4), "abcd", true));
  }
  ASSERT_FALSE(last.ok());
  EXPECT_NE(last.error().message.find("more than"), std::string::npos);
}

TEST(Mode6, AssociationListAndPeerStatus) {
  const std::string data("\x00\x01\x96\x1a\x00\x02\x90\x14", 8);
  auto list = ParseAssociationList(data);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, 1);
  const PeerStatus p = DecodePeerStatus((*list)[0].status);  // 0x961a
  EXPECT_TRUE(p.configured);
  EXPECT_TRUE(p.reachable);
  EXPECT_EQ(p.selection, 6);
  EXPECT_EQ(SelectionName(p.selection), "sys.peer");
  EXPECT_EQ(SelectionName(DecodePeerStatus((*list)[1].status).selection), "reject");
  EXPECT_NE(ParseAssociationList("abc").error().message.find("not a multiple of 4"),
            std::string::npos);
  EXPECT_NE(ParseAssociationList(std::string("\0\0\0\0", 4)).error().message.find("id 0"),
            std::string::npos);
}

TEST(Mode6, VariablesText) {
  auto v = ParseVariables(std::string(kSystem) + std::string("\0\0", 2));
  ASSERT_TRUE(v.ok()) << v.error().message;
  ASSERT_EQ(v->size(), 11u);
  EXPECT_EQ((*v)[0].first, "version");
  EXPECT_EQ((*v)[0].second, "ntpd ntpsec-1.2.2");
  auto q = ParseVariables("a=\"x, y\", flag, b=2");
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->size(), 3u);
  EXPECT_EQ((*q)[0].second, "x, y");
  EXPECT_EQ((*q)[1].first, "flag");
  EXPECT_NE(ParseVariables("a=\"open").error().message.find("unterminated quote"),
            std::string::npos);
  EXPECT_NE(ParseVariables(std::string("a=1\0b=2", 7)).error().message.find("NUL at octet 3"),
            std::string::npos);
  // Odd names (ntpsec's random tags, garbage) are skipped, the rest kept.
  auto odd = ParseVariables("a=1, =2, b\x01\xa0=2, c=3");
  ASSERT_TRUE(odd.ok());
  ASSERT_EQ(odd->size(), 2u);
  EXPECT_EQ((*odd)[1].first, "c");
}

TEST(Mode6, SystemVariablesInSeconds) {
  auto s = SystemFromVariables(*ParseVariables(kSystem));
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->leap, 0);
  EXPECT_EQ(s->stratum, 2);
  EXPECT_EQ(s->refid, "127.0.0.2");
  EXPECT_DOUBLE_EQ(s->offset_s, -0.00025);
  EXPECT_DOUBLE_EQ(s->root_delay_s, 0.00012);
  EXPECT_DOUBLE_EQ(s->root_dispersion_s, 0.0015);
  EXPECT_DOUBLE_EQ(s->sys_jitter_s, 0.000004);
  EXPECT_EQ(s->precision_log2, -24);
  EXPECT_EQ(s->version, "ntpd ntpsec-1.2.2");
  EXPECT_NE(SystemFromVariables(*ParseVariables("stratum=2")).error().message.find("no leap"),
            std::string::npos);
  EXPECT_NE(SystemFromVariables(*ParseVariables("leap=4, stratum=2")).error().message.find("leap"),
            std::string::npos);
  EXPECT_NE(SystemFromVariables(*ParseVariables("leap=0, stratum=2, offset=fast"))
                .error()
                .message.find("variable offset: not a number: \"fast\""),
            std::string::npos);
  EXPECT_FALSE(SystemFromVariables(*ParseVariables("leap=0, stratum=2, offset=nan")).ok());
}

TEST(Mode6, PeerVariables) {
  auto p = PeerFromVariables(*ParseVariables(
      "srcadr=127.0.0.2, srcport=123, stratum=1, reach=0xff, refid=GPS, offset=0.5, delay=0.1, "
      "jitter=0.01"));
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->address, "127.0.0.2");
  EXPECT_EQ(p->reach, 255);
  EXPECT_EQ(p->stratum, 1);
  EXPECT_DOUBLE_EQ(p->offset_s, 0.0005);
  auto port = PeerFromVariables(*ParseVariables("srcadr=10.0.0.1, srcport=1123, reach=0x3"));
  EXPECT_EQ(port->address, "10.0.0.1:1123");
  EXPECT_EQ(port->reach, 3);
  EXPECT_NE(PeerFromVariables(*ParseVariables("stratum=1")).error().message.find("no srcadr"),
            std::string::npos);
  EXPECT_NE(
      PeerFromVariables(*ParseVariables("srcadr=a, reach=0x100")).error().message.find("reach"),
      std::string::npos);
}

// A UDP responder on 127.0.0.1 whose answers a test function writes.
class Responder {
 public:
  using Handler = std::function<std::vector<std::vector<uint8_t>>(const Header& request)>;
  explicit Responder(Handler handler) : handler_(std::move(handler)) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    timeval tv{0, 50'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    thread_ = std::thread([this] { Run(); });
  }
  ~Responder() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  void Run() {
    while (!stop_) {
      uint8_t buf[600];
      sockaddr_in from{};
      socklen_t len = sizeof from;
      const ssize_t n =
          ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 12) continue;
      std::vector<uint8_t> req(buf, buf + n);
      req[1] |= 0x80;  // parse the request's header with the response parser
      auto h = ParseHeader(req);
      if (!h) continue;
      for (const auto& d : handler_(*h)) {
        ::sendto(fd_, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
      }
    }
  }
  Handler handler_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(Mode6Client, ReadsSystemAndPeersThroughFragmentsAndStrays) {
  const std::string text(kSystem);
  Responder server([&](const Header& q) -> std::vector<std::vector<uint8_t>> {
    if (q.opcode == kOpReadStatus) {
      return {Response(q.sequence, 0, std::string("\x00\x05\x96\x1a", 4), false, kOpReadStatus)};
    }
    if (q.association_id == 5) {
      return {Response(q.sequence, 0, "srcadr=127.0.0.2, reach=0x7f, stratum=1, offset=1.5", false,
                       kOpReadVariables, 0x961a, false, 5)};
    }
    // A stray answer of another sequence first, then two fragments last-first.
    return {Response(static_cast<uint16_t>(q.sequence - 1), 0, "leap=3, stratum=16", false),
            Response(q.sequence, 64, text.substr(64), false),
            Response(q.sequence, 0, text.substr(0, 64), true)};
  });
  const SystemClock clock;
  Mode6Client client(server.address(), 1.0);
  auto obs = ReadNtpd(client, true, clock, clock.MonotonicNs() + 5'000'000'000);
  ASSERT_TRUE(obs.ok()) << obs.error().message;
  EXPECT_EQ(obs->stratum, 2);
  EXPECT_EQ(obs->leap, 0);
  ASSERT_EQ(obs->peers.size(), 1u);
  EXPECT_EQ(obs->peers[0].association_id, 5);
  EXPECT_EQ(obs->peers[0].condition, "sys.peer");
  EXPECT_EQ(obs->peers[0].reach, 0x7f);
  EXPECT_DOUBLE_EQ(obs->peers[0].offset_s, 0.0015);
}

TEST(Mode6Client, RestrictedAnswerIsNamed) {
  Responder server([](const Header& q) -> std::vector<std::vector<uint8_t>> {
    return {Response(q.sequence, 0, "", false, kOpReadVariables, 0x0700, true)};
  });
  const SystemClock clock;
  Mode6Client client(server.address(), 1.0);
  auto obs = ReadNtpd(client, false, clock, clock.MonotonicNs() + 5'000'000'000);
  ASSERT_FALSE(obs.ok());
  EXPECT_NE(obs.error().message.find("READVAR association 0: error response: administratively "
                                     "prohibited (restricted)"),
            std::string::npos)
      << obs.error().message;
}

TEST(Mode6Client, SilenceIsNoAnswerWithTheLastDiscardedReason) {
  Responder server([](const Header& q) -> std::vector<std::vector<uint8_t>> {
    auto junk = Response(q.sequence, 0, "x", false);
    junk[0] = 0x14;  // mode 4
    return {junk};
  });
  const SystemClock clock;
  Mode6Client client(server.address(), 0.2);
  auto obs = ReadNtpd(client, false, clock, clock.MonotonicNs() + 5'000'000'000);
  ASSERT_FALSE(obs.ok());
  EXPECT_NE(obs.error().message.find("no answer within"), std::string::npos);
  EXPECT_NE(obs.error().message.find("mode 4"), std::string::npos) << obs.error().message;
}

TEST(Mode6Client, NobodyListeningIsRefused) {
  // A port that was just bound and closed: nothing listens there.
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  const SystemClock clock;
  Mode6Client client("127.0.0.1:" + std::to_string(ntohs(a.sin_port)), 1.0);
  auto obs = ReadNtpd(client, false, clock, clock.MonotonicNs() + 5'000'000'000);
  ASSERT_FALSE(obs.ok());
  EXPECT_NE(obs.error().message.find("refused (ICMP port unreachable)"), std::string::npos)
      << obs.error().message;
}

}  // namespace
}  // namespace vmtime::ntpd
