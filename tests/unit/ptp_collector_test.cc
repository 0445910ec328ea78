// The ptp collector and PtpClient against a scripted fake ptp4l on a UNIX
// datagram socket in a private directory: a full poll, a stray answer with
// another sequence id skipped, one PORT_DATA_SET answer per port,
// TIME_STATUS_NP NOT_SUPPORTED tolerated, silence bounded by the timeout,
// no socket (named error) and the client socket unlinked after. The real
// ptp4l is tests/e2e/test_ptp.py; the host reference rule from PTP state is
// host_reference_ptp_test.cc.
#include "exporter/collectors/ptp/ptp_collector.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "exporter/collectors/ptp/ptp_management.h"

namespace vmtime {
namespace {

using Bytes = std::vector<uint8_t>;

void Put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

Bytes Response(uint16_t sequence, uint16_t id, const Bytes& data, uint16_t tlv_type = 0x0001) {
  Bytes m(54 + data.size(), 0);
  m[0] = 0x0D;
  m[1] = 0x02;
  Put16(m, 2, static_cast<uint16_t>(m.size()));
  Put16(m, 30, sequence);
  m[32] = 0x04;
  m[33] = 0x7F;
  m[46] = 0x02;
  Put16(m, 48, tlv_type);
  Put16(m, 50, static_cast<uint16_t>(2 + data.size()));
  Put16(m, 52, id);
  std::copy(data.begin(), data.end(), m.begin() + 54);
  return m;
}

// What a ptp4l slave with `ports` ports says about each data set.
Bytes DataSet(uint16_t id, int ports, int port_number) {
  Bytes d(ptp::DataSetBytes(id), 0);
  switch (id) {
    case ptp::kIdDefaultDataSet:
      Put16(d, 2, static_cast<uint16_t>(ports));
      d[5] = 248;
      d[10] = 0x02;
      break;
    case ptp::kIdCurrentDataSet:
      Put16(d, 0, 1);
      d[9] = 0x64;  // offsetFromMaster: 100 in units of 2^-16 ns
      break;
    case ptp::kIdParentDataSet:
      d[19] = 6;
      d[24] = 0x0a;
      break;
    case ptp::kIdPortDataSet:
      Put16(d, 8, static_cast<uint16_t>(port_number));
      d[10] = port_number == 1 ? 9 : 6;  // SLAVE, then MASTER
      break;
    default:
      break;
  }
  return d;
}

class FakePtp4l {
 public:
  // `answer(id, sequence)` returns the datagrams to send back.
  explicit FakePtp4l(std::function<std::vector<Bytes>(uint16_t, uint16_t)> answer)
      : answer_(std::move(answer)) {
    char tmpl[] = "/tmp/vmtime-ptp-test.XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/ptp4l";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, path_.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakePtp4l() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    std::filesystem::remove_all(dir_);
  }
  const std::string& path() const { return path_; }
  const std::string& dir() const { return dir_; }
  int requests() const { return requests_; }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      uint8_t buf[1500];
      sockaddr_un from{};
      socklen_t from_len = sizeof from;
      const ssize_t n =
          ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n < 54) continue;
      ++requests_;
      const auto id = static_cast<uint16_t>((buf[52] << 8) | buf[53]);
      const auto seq = static_cast<uint16_t>((buf[30] << 8) | buf[31]);
      for (const Bytes& reply : answer_(id, seq)) {
        ::sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
      }
    }
  }

  std::function<std::vector<Bytes>(uint16_t, uint16_t)> answer_;
  std::string dir_, path_;
  int fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
};

// A two-port boundary clock that first sends a stray answer (previous
// sequence id) to every request and answers TIME_STATUS_NP NOT_SUPPORTED.
std::vector<Bytes> TwoPortAnswers(uint16_t id, uint16_t seq) {
  std::vector<Bytes> out = {Response(static_cast<uint16_t>(seq - 1), id, DataSet(id, 2, 1))};
  if (id == ptp::kIdTimeStatusNp) {
    Bytes status(8, 0);
    Put16(status, 0, 0x0006);
    Put16(status, 2, id);
    out.push_back(Response(seq, 0, {}, 0x0002));
    out.back().resize(52);
    out.back().insert(out.back().end(), status.begin(), status.end());
    Put16(out.back(), 2, static_cast<uint16_t>(out.back().size()));
    Put16(out.back(), 50, 8);
    return out;
  }
  if (id == ptp::kIdPortDataSet) {
    out.push_back(Response(seq, id, DataSet(id, 2, 2)));
    out.push_back(Response(seq, id, DataSet(id, 2, 1)));
    return out;
  }
  out.push_back(Response(seq, id, DataSet(id, 2, 0)));
  return out;
}

PtpConfig ConfigFor(const FakePtp4l& f, double timeout_s = 1) {
  PtpConfig c;
  c.socket = f.path();
  c.timeout_s = timeout_s;
  return c;
}

TEST(PtpCollector, ReadsEveryDataSetSkippingStrays) {
  FakePtp4l fake(TwoPortAnswers);
  PtpCollector collector(ConfigFor(fake));
  const Clock& clock = SystemClock::Instance();
  Observations out;
  CollectContext ctx{clock, clock.MonotonicNs() + 5 * kNsPerSecond, {}};
  Status s = collector.Collect(ctx, out);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_TRUE(out.ptp.has_value());
  const PtpObservation& o = *out.ptp;
  EXPECT_EQ(o.number_ports, 2);
  EXPECT_EQ(o.steps_removed, 1);
  EXPECT_NEAR(o.offset_from_master_s, 100.0 / 65536 * 1e-9, 1e-18);
  EXPECT_EQ(o.grandmaster_clock_class, 6);
  ASSERT_EQ(o.ports.size(), 2u);
  EXPECT_EQ(o.ports[0].port_number, 1);
  EXPECT_EQ(o.ports[0].state, PtpPortState::kSlave);
  EXPECT_EQ(o.ports[1].state, PtpPortState::kMaster);
  EXPECT_FALSE(o.master_offset_s.has_value());  // NOT_SUPPORTED: absent, not an error
  EXPECT_EQ(fake.requests(), 6);
  // The client socket lives next to ptp4l's while open, and goes with the collector.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(fake.dir())) {
    files += e.path().filename().string().starts_with("vmtime-exporter-ptp.") ? 1 : 0;
  }
  EXPECT_EQ(files, 1);
}

TEST(PtpCollector, ClientSocketIsUnlinkedOnClose) {
  FakePtp4l fake(TwoPortAnswers);
  {
    PtpCollector collector(ConfigFor(fake));
    Observations out;
    const Clock& clock = SystemClock::Instance();
    ASSERT_TRUE(collector.Collect({clock, clock.MonotonicNs() + 5 * kNsPerSecond, {}}, out).ok());
  }
  for (const auto& e : std::filesystem::directory_iterator(fake.dir())) {
    EXPECT_EQ(e.path().filename(), "ptp4l");
  }
}

TEST(PtpCollector, RemovesClientSocketsOfExportersThatAreGone) {
  FakePtp4l fake(TwoPortAnswers);
  const pid_t child = ::fork();
  if (child == 0) std::_Exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);  // a pid that no longer exists
  const std::string stale = fake.dir() + "/vmtime-exporter-ptp." + std::to_string(child) + ".0";
  const std::string alive =
      fake.dir() + "/vmtime-exporter-ptp." + std::to_string(::getppid()) + ".0";
  std::ofstream(stale) << "";
  std::ofstream(alive) << "";
  PtpCollector collector(ConfigFor(fake));
  Observations out;
  const Clock& clock = SystemClock::Instance();
  ASSERT_TRUE(collector.Collect({clock, clock.MonotonicNs() + 5 * kNsPerSecond, {}}, out).ok());
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_TRUE(std::filesystem::exists(alive));  // its process still runs
}

TEST(PtpCollector, SilenceIsAnErrorWithinTheTimeout) {
  FakePtp4l fake([](uint16_t, uint16_t) { return std::vector<Bytes>{}; });
  PtpCollector collector(ConfigFor(fake, 0.2));
  const Clock& clock = SystemClock::Instance();
  Observations out;
  const int64_t start = clock.MonotonicNs();
  Status s = collector.Collect({clock, start + 5 * kNsPerSecond, {}}, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("0 of 1 answers to GET DEFAULT_DATA_SET"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("domain_number"), std::string::npos);
  EXPECT_FALSE(out.ptp.has_value());
}

TEST(PtpCollector, HostileAnswerIsANamedError) {
  FakePtp4l fake([](uint16_t id, uint16_t seq) {
    Bytes r = Response(seq, id, DataSet(id, 1, 1));
    Put16(r, 50, 400);  // TLV length past the end
    return std::vector<Bytes>{r};
  });
  PtpCollector collector(ConfigFor(fake));
  const Clock& clock = SystemClock::Instance();
  Observations out;
  Status s = collector.Collect({clock, clock.MonotonicNs() + 5 * kNsPerSecond, {}}, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("TLV with length 400 past the end"), std::string::npos) << s.message();
}

TEST(PtpCollector, MissingSocketNamesPtp4l) {
  PtpConfig c;
  c.socket = "/nonexistent-vmtime-dir/ptp4l";
  c.client_dir = "/tmp";
  PtpCollector collector(c);
  const Clock& clock = SystemClock::Instance();
  Observations out;
  Status s = collector.Collect({clock, clock.MonotonicNs() + kNsPerSecond, {}}, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("is ptp4l running with uds_address /nonexistent-vmtime-dir/ptp4l"),
            std::string::npos)
      << s.message();
}

}  // namespace
}  // namespace vmtime
