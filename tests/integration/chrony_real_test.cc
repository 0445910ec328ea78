// ChronyCollector against real chronyd 4.x on loopback: a server instance
// (local stratum 8) and a client instance synchronised to it (`server
// localhost`, so NTP_SOURCE_NAME has a name to report), both private (own
// temp dir, ports chosen at run time, -x). Every tracking, sources and
// sourcestats value the collector reports is compared with what
// `chronyc -c` prints around the same moment, over the unix socket and over
// UDP. Also: chronyd stopped (clear failure) and restarted (recovery), and
// a client socket directory the exporter cannot write to.
//
// The client polls with minpoll/maxpoll 6 after an iburst: it syncs in a few
// seconds and then no sample arrives for a minute, so chronyc's output and
// ours describe the same samples.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <thread>

#include "exporter/collectors/chrony/chrony_collector.h"
#include "tests/integration/chrony_daemon_fixture.h"

namespace vmtime {
namespace {

using testing::ChronyDaemon;
using testing::FreeUdpPort;
using testing::RunShell;
using testing::Split;
using testing::TempDir;

constexpr double kTol9 = 1.5e-9;  // %.9f print precision, plus rounding
constexpr double kTol3 = 1.5e-3;  // %.3f

class ChronyRealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    for (int tries = 0; tries < 5; ++tries) {
      ntp_port_ = FreeUdpPort();
      if (server_.Start(ServerConf(), dir_.path() + "/s.sock")) break;
    }
    ASSERT_GT(server_.pid(), 0) << server_.Log();
    for (int tries = 0; tries < 5; ++tries) {
      cmd_port_ = FreeUdpPort();
      if (client_.Start(ClientConf(), ClientSocket(), {"-4"})) break;
    }
    ASSERT_GT(client_.pid(), 0) << client_.Log();
    WaitForSync();
  }
  void TearDown() override {
    client_.Stop();
    server_.Stop();
  }

  std::string ServerConf() const {
    return "port " + std::to_string(ntp_port_) +
           "\nbindaddress 127.0.0.1\nallow 127.0.0.1\nbindcmdaddress " + dir_.path() +
           "/s.sock\ncmdport 0\nlocal stratum 8\npidfile " + dir_.path() + "/s.pid\n";
  }
  std::string ClientConf() const {
    return "port 0\nserver localhost port " + std::to_string(ntp_port_) +
           " iburst minpoll 6 maxpoll 6\nbindcmdaddress " + ClientSocket() +
           "\nbindcmdaddress 127.0.0.1\ncmdport " + std::to_string(cmd_port_) +
           "\ncmdallow 127.0.0.1\npidfile " + dir_.path() + "/c.pid\n";
  }
  std::string ClientSocket() const { return dir_.path() + "/c.sock"; }
  std::string Chronyc(const std::string& what) const {
    return RunShell("chronyc -n -h " + ClientSocket() + " -c " + what);
  }

  // Bounded: until the source is selected after the iburst's 4 samples.
  void WaitForSync() {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::string last;
    while (std::chrono::steady_clock::now() < until) {
      last = Chronyc("sources");
      const auto f = Split(last, ',');
      if (f.size() >= 6 && f[1] == "*" && f[5] == "17") return;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    FAIL() << "client chronyd did not sync within 60 s; chronyc sources: " << last
           << "\nclient log:\n"
           << client_.Log();
  }

  Result<ChronyObservation> Collect(const std::string& address) {
    ChronyConfig cfg;
    cfg.address = address;
    cfg.timeout_s = 2;
    ChronyCollector c(cfg);
    Observations out;
    const Clock& clock = SystemClock::Instance();
    CollectContext ctx{clock, clock.MonotonicNs() + 10 * kNsPerSecond, {}};
    Status s = c.Collect(ctx, out);
    if (!s) return s.error();
    if (!out.chrony) return Error{"no observation"};
    return *out.chrony;
  }

  void CompareWithChronyc(const std::string& address);

  TempDir dir_;
  ChronyDaemon server_{dir_.path(), "server"};
  ChronyDaemon client_{dir_.path(), "client"};
  int ntp_port_ = 0;
  int cmd_port_ = 0;
};

double D(const std::string& s) { return std::stod(s); }

int LeapFromText(const std::string& s) {
  if (s == "Normal") return 0;
  if (s == "Insert second") return 1;
  if (s == "Delete second") return 2;
  return 3;  // "Not synchronised"
}

int ModeFromChar(const std::string& c) { return c == "^" ? 0 : c == "=" ? 1 : 2; }
int StateFromChar(const std::string& c) {
  static const std::map<std::string, int> k = {{"*", 0}, {"?", 1}, {"x", 2},
                                               {"~", 3}, {"+", 4}, {"-", 5}};
  auto it = k.find(c);
  return it == k.end() ? -1 : it->second;
}

// a <= x <= b, widened by tol, whichever order a and b come in.
void ExpectBetween(double x, double a, double b, double tol, const char* what) {
  EXPECT_GE(x, std::min(a, b) - tol) << what;
  EXPECT_LE(x, std::max(a, b) + tol) << what;
}

void ChronyRealTest::CompareWithChronyc(const std::string& address) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    const std::string t0 = Chronyc("tracking"), s0 = Chronyc("sources"),
                      st0 = Chronyc("sourcestats");
    auto obs = Collect(address);
    ASSERT_TRUE(obs.ok()) << obs.error().message;
    const std::string t1 = Chronyc("tracking"), s1 = Chronyc("sources"),
                      st1 = Chronyc("sourcestats");
    const auto a = Split(t0.substr(0, t0.find('\n')), ',');
    const auto b = Split(t1.substr(0, t1.find('\n')), ',');
    ASSERT_EQ(a.size(), 14u) << t0;
    ASSERT_EQ(b.size(), 14u) << t1;
    // A new sample between the two chronyc runs changes the last offset:
    // then the moment is not comparable, take another.
    if (a[5] != b[5] || a[3] != b[3]) continue;
    const ChronyTracking& t = obs->tracking;
    char refid[9];
    std::snprintf(refid, sizeof refid, "%08X", t.reference_id);
    EXPECT_EQ(refid, a[0]);
    EXPECT_EQ(t.reference_name, a[1]);
    EXPECT_EQ(t.reference_name, "127.0.0.1");
    EXPECT_EQ(std::to_string(t.stratum), a[2]);
    EXPECT_EQ(t.stratum, 9);
    EXPECT_NEAR(t.ref_time_real_s, D(a[3]), 1e-6);  // double keeps ~0.2 us at 1.8e9 s
    // chronyc prints the correction; we report local - true (its negation).
    ExpectBetween(t.system_time_offset_s, -D(a[4]), -D(b[4]), kTol9, "system time");
    EXPECT_NEAR(t.last_offset_s, D(a[5]), kTol9);
    EXPECT_NEAR(t.rms_offset_s, D(a[6]), kTol9);
    EXPECT_NEAR(t.frequency_ppm, D(a[7]), kTol3);
    EXPECT_NEAR(t.residual_frequency_ppm, D(a[8]), kTol3);
    EXPECT_NEAR(t.skew_ppm, D(a[9]), kTol3);
    EXPECT_NEAR(t.root_delay_s, D(a[10]), kTol9);
    ExpectBetween(t.root_dispersion_s, D(a[11]), D(b[11]), kTol9, "root dispersion");
    EXPECT_NEAR(t.update_interval_s, D(a[12]), 0.051);
    EXPECT_EQ(t.leap_status, LeapFromText(a[13]));

    const auto src_lines = Split(s0, '\n');
    const auto src_lines1 = Split(s1, '\n');
    ASSERT_EQ(obs->sources.size(), src_lines.size()) << s0;
    ASSERT_EQ(obs->sources.size(), 1u);
    const auto f = Split(src_lines[0], ',');
    const auto g = Split(src_lines1[0], ',');
    ASSERT_EQ(f.size(), 10u) << s0;
    ASSERT_EQ(g.size(), 10u) << s1;
    const ChronySource& s = obs->sources[0];
    EXPECT_EQ(s.mode, ModeFromChar(f[0]));
    EXPECT_EQ(s.state, StateFromChar(f[1]));
    EXPECT_EQ(s.address, f[2]);
    EXPECT_EQ(s.address, "127.0.0.1");
    EXPECT_EQ(s.name, "localhost");  // from NTP_SOURCE_NAME: as configured
    EXPECT_EQ(std::to_string(s.stratum), f[3]);
    EXPECT_EQ(std::to_string(s.poll_log2), f[4]);
    EXPECT_EQ(s.reachability, std::stoi(f[5], nullptr, 8));
    ExpectBetween(s.since_sample_s, D(f[6]), D(g[6]), 0, "since last sample");
    EXPECT_NEAR(s.latest_offset_s, D(f[7]), kTol9);
    EXPECT_NEAR(s.orig_latest_offset_s, D(f[8]), kTol9);
    EXPECT_NEAR(s.latest_error_s, D(f[9]), kTol9);

    const auto h = Split(st0.substr(0, st0.find('\n')), ',');
    const auto k = Split(st1.substr(0, st1.find('\n')), ',');
    ASSERT_EQ(h.size(), 8u) << st0;
    ASSERT_EQ(k.size(), 8u) << st1;
    EXPECT_EQ(h[0], s.address);
    ASSERT_TRUE(s.stats_samples.has_value());
    EXPECT_EQ(std::to_string(*s.stats_samples), h[1]);
    EXPECT_NEAR(*s.stats_frequency_ppm, D(h[4]), kTol3);
    EXPECT_NEAR(*s.stats_skew_ppm, D(h[5]), kTol3);
    ExpectBetween(*s.stats_offset_s, D(h[6]), D(k[6]), kTol9, "sourcestats offset");
    EXPECT_NEAR(*s.stats_std_dev_s, D(h[7]), kTol9);
    return;
  }
  FAIL() << "chronyd's state kept changing between chronyc runs";
}

TEST_F(ChronyRealTest, UnixSocketValuesMatchChronyc) {
  CompareWithChronyc("unix://" + ClientSocket());
}

TEST_F(ChronyRealTest, UdpCmdportValuesMatchChronyc) {
  CompareWithChronyc("127.0.0.1:" + std::to_string(cmd_port_));
}

TEST_F(ChronyRealTest, ServerInstanceLocalStratum) {
  auto obs = Collect("unix://" + dir_.path() + "/s.sock");
  ASSERT_TRUE(obs.ok()) << obs.error().message;
  EXPECT_EQ(obs->tracking.stratum, 8);
  EXPECT_EQ(obs->tracking.reference_id, 0x7F7F0101u);  // local reference
  EXPECT_TRUE(obs->sources.empty());
}

TEST_F(ChronyRealTest, StoppedChronydFailsClearlyAndRestartRecovers) {
  ChronyConfig cfg;
  cfg.address = "unix://" + ClientSocket();
  cfg.timeout_s = 0.5;
  ChronyCollector unix_collector(cfg);
  cfg.address = "127.0.0.1:" + std::to_string(cmd_port_);
  ChronyCollector udp_collector(cfg);
  const Clock& clock = SystemClock::Instance();
  auto collect = [&](ChronyCollector& c) {
    Observations out;
    CollectContext ctx{clock, clock.MonotonicNs() + 5 * kNsPerSecond, {}};
    Status s = c.Collect(ctx, out);
    EXPECT_EQ(s.ok(), out.chrony.has_value());
    return s;
  };
  ASSERT_TRUE(collect(unix_collector).ok());
  ASSERT_TRUE(collect(udp_collector).ok());

  client_.Stop();
  Status s = collect(unix_collector);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().rfind("chrony: ", 0), 0u) << s.message();
  EXPECT_NE(s.message().find(ClientSocket()), std::string::npos) << s.message();
  Status u = collect(udp_collector);
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.message().find("127.0.0.1:" + std::to_string(cmd_port_)), std::string::npos)
      << u.message();

  ASSERT_TRUE(client_.Start(ClientConf(), ClientSocket(), {"-4"})) << client_.Log();
  Status r = collect(unix_collector);
  EXPECT_TRUE(r.ok()) << r.message();
  Status ru = collect(udp_collector);
  EXPECT_TRUE(ru.ok()) << ru.message();
}

TEST_F(ChronyRealTest, PausedChronydTimesOutWithinTheRequestTimeout) {
  ChronyConfig cfg;
  cfg.address = "unix://" + ClientSocket();
  cfg.timeout_s = 0.3;
  ChronyCollector c(cfg);
  client_.Pause();
  const Clock& clock = SystemClock::Instance();
  Observations out;
  CollectContext ctx{clock, clock.MonotonicNs() + 5 * kNsPerSecond, {}};
  Status s = c.Collect(ctx, out);
  client_.Resume();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no reply"), std::string::npos) << s.message();
}

// The exporter's user cannot create its client socket next to chronyd's:
// a child process drops to `nobody` and must get a message naming the
// directory and docs/chrony.md.
TEST_F(ChronyRealTest, UnwritableSocketDirectoryNamesTheFix) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string msg;
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) {
      msg = "setuid failed";
    } else {
      ChronyConfig cfg;
      cfg.address = "unix://" + ClientSocket();
      ChronyCollector c(cfg);
      const Clock& clock = SystemClock::Instance();
      Observations out;
      CollectContext ctx{clock, clock.MonotonicNs() + 2 * kNsPerSecond, {}};
      Status s = c.Collect(ctx, out);
      msg = s.ok() ? "unexpected success" : s.message();
    }
    (void)!::write(fds[1], msg.data(), msg.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_NE(msg.find("Permission denied"), std::string::npos) << msg;
  EXPECT_NE(msg.find("must be able to write to " + dir_.path()), std::string::npos) << msg;
  EXPECT_NE(msg.find("docs/chrony.md"), std::string::npos) << msg;
}

}  // namespace
}  // namespace vmtime
