// The libvirt collector against libvirt's in-process test driver
// (test:///default and custom node XML): real handles, real errors, no daemon.
// The test driver's guest clock is frozen at 627319920 s, a free "stopped
// clock" fixture.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "exporter/collectors/libvirt/libvirt_collector.h"
#include "exporter/collectors/libvirt/real_libvirt_api.h"

namespace vmtime {
namespace {

using std::chrono::milliseconds;
constexpr int64_t kTestDriverTimeS = 627319920;

std::map<std::string, DomainObservation> ByName(const Observations& o) {
  std::map<std::string, DomainObservation> m;
  if (o.libvirt) {
    for (const auto& d : o.libvirt->domains) m[d.name.str()] = d;
  }
  return m;
}

Status CollectOnce(LibvirtCollector& c, Observations& out) {
  CollectContext ctx{
      SystemClock::Instance(), SystemClock::Instance().MonotonicNs() + kNsPerSecond, {}};
  return c.Collect(ctx, out);
}

TEST(LibvirtTestDriverTest, DefaultDomainIsRunningWithFrozenClock) {
  LibvirtConfig config;
  config.uri = "test:///default";
  LibvirtCollector c(config, SystemClock::Instance());
  EXPECT_EQ(c.Name(), "libvirt");
  Observations out;
  Status st = CollectOnce(c, out);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(out.libvirt.has_value());
  EXPECT_TRUE(out.libvirt->connected);
  auto m = ByName(out);
  ASSERT_EQ(m.count("test"), 1u);
  EXPECT_EQ(m["test"].state, DomainState::kRunning);
  EXPECT_EQ(m["test"].uuid.size(), 36u);
  ASSERT_TRUE(c.scheduler().WaitIdle(milliseconds(10'000)));
  Observations out2;
  ASSERT_TRUE(CollectOnce(c, out2).ok());
  auto m2 = ByName(out2);
  ASSERT_TRUE(m2["test"].agent_up) << m2["test"].agent_error;
  ASSERT_TRUE(m2["test"].sample.has_value());
  const scoring::ClockSample& s = *m2["test"].sample;
  EXPECT_EQ(s.guest_real_ns, kTestDriverTimeS * kNsPerSecond);
  // guest - host: the frozen 1989 clock is far behind the host.
  const double expected =
      static_cast<double>(kTestDriverTimeS) - static_cast<double>(s.host_real_ns) / 1e9;
  EXPECT_NEAR(s.offset_s, expected, 1e-6);
  EXPECT_LT(s.offset_s, -1e9);
  EXPECT_GE(s.uncertainty_s, 0);
  EXPECT_LT(s.uncertainty_s, 1.0);
  EXPECT_GT(m2["test"].rtt_s, 0);
}

class LibvirtCustomXmlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vmtime-libvirt-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream f(dir_ / "node.xml");
    f << "<node>\n";
    Domain(f, "alpha", "11111111-1111-1111-1111-111111111111", 1);
    Domain(f, "bravo", "22222222-2222-2222-2222-222222222222", 3);
    Domain(f, "charlie", "33333333-3333-3333-3333-333333333333", 5);
    Domain(f, "delta", "44444444-4444-4444-4444-444444444444", 1);
    f << "</node>\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  static void Domain(std::ofstream& f, const char* name, const char* uuid, int runstate) {
    f << "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
      << "<name>" << name << "</name><uuid>" << uuid << "</uuid><memory>65536</memory>"
      << "<os><type>hvm</type></os><test:runstate>" << runstate << "</test:runstate></domain>\n";
  }
  std::filesystem::path dir_;
};

TEST_F(LibvirtCustomXmlTest, ListsEveryStateAndSamplesOnlyRunning) {
  LibvirtConfig config;
  config.uri = "test://" + (dir_ / "node.xml").string();
  LibvirtCollector c(config, SystemClock::Instance());
  Observations out;
  Status st = CollectOnce(c, out);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(c.scheduler().WaitIdle(milliseconds(10'000)));
  Observations out2;
  ASSERT_TRUE(CollectOnce(c, out2).ok());
  auto m = ByName(out2);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m["alpha"].state, DomainState::kRunning);
  EXPECT_EQ(m["bravo"].state, DomainState::kPaused);
  EXPECT_EQ(m["charlie"].state, DomainState::kShutoff);
  EXPECT_EQ(m["alpha"].uuid, "11111111-1111-1111-1111-111111111111");
  EXPECT_TRUE(m["alpha"].sample.has_value());
  EXPECT_TRUE(m["delta"].sample.has_value());
  EXPECT_FALSE(m["bravo"].sample.has_value());
  EXPECT_FALSE(m["charlie"].sample.has_value());
  EXPECT_EQ(m["bravo"].agent_error, "domain is paused (not sampled)");
  EXPECT_EQ(m["charlie"].agent_error, "domain is shutoff (not sampled)");
}

// A steady fleet's lists keep no new text: the second list hands out the
// first one's uuid and name blocks, and what the collector observes shares
// them too (docs/performance.md, "Memory at 10,000 VMs").
TEST_F(LibvirtCustomXmlTest, RepeatedListsShareTheTextsOfTheFirst) {
  LibvirtConfig config;
  config.uri = "test://" + (dir_ / "node.xml").string();
  libvirt::RealLibvirtApi api(config, SystemClock::Instance());
  auto first = api.ListDomains();
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto second = api.ListDomains();
  ASSERT_TRUE(second.ok()) << second.error().message;
  ASSERT_EQ(first->size(), 4u);
  ASSERT_EQ(second->size(), 4u);
  for (size_t i = 0; i < first->size(); ++i) {
    const libvirt::DomainInfo& a = (*first)[i];
    const libvirt::DomainInfo& b = (*second)[i];
    EXPECT_EQ(a.uuid, b.uuid);
    EXPECT_EQ(a.uuid.c_str(), b.uuid.c_str()) << a.name << ": a new uuid block";
    EXPECT_EQ(a.name.c_str(), b.name.c_str()) << a.name << ": a new name block";
  }
  // The handle table holds one reference, each list's entries one each.
  EXPECT_EQ((*second)[0].uuid.use_count(), 3u);
  first->clear();
  second->clear();
  auto third = api.ListDomains();
  ASSERT_TRUE(third.ok());
  EXPECT_EQ((*third)[0].uuid.use_count(), 2u);

  LibvirtCollector c(config, SystemClock::Instance());
  Observations out;
  ASSERT_TRUE(CollectOnce(c, out).ok());
  ASSERT_TRUE(c.scheduler().WaitIdle(milliseconds(10'000)));
  Observations out2;
  ASSERT_TRUE(CollectOnce(c, out2).ok());
  ASSERT_EQ(out.libvirt->domains.size(), 4u);
  ASSERT_EQ(out2.libvirt->domains.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(out.libvirt->domains[i].uuid.c_str(), out2.libvirt->domains[i].uuid.c_str());
    EXPECT_EQ(out.libvirt->domains[i].name.c_str(), out2.libvirt->domains[i].name.c_str());
  }
}

TEST(LibvirtTestDriverTest, BadUriGivesClearErrorNamingTheUri) {
  LibvirtConfig config;
  config.uri = "nosuchdriver:///nowhere";
  LibvirtCollector c(config, SystemClock::Instance());
  Observations out;
  Status st = CollectOnce(c, out);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("virConnectOpen(nosuchdriver:///nowhere)"), std::string::npos)
      << st.message();
  ASSERT_TRUE(out.libvirt.has_value());
  EXPECT_FALSE(out.libvirt->connected);
  EXPECT_TRUE(out.libvirt->domains.empty());
  // The next attempt waits for the backoff and says so.
  Observations again;
  Status st2 = CollectOnce(c, again);
  ASSERT_FALSE(st2.ok());
  EXPECT_NE(st2.message().find("next attempt in"), std::string::npos) << st2.message();
}

TEST(LibvirtTestDriverTest, MissingXmlFileNamesThePath) {
  libvirt::RealLibvirtApi api(LibvirtConfig{.uri = "test:///nonexistent/dir/node.xml"},
                              SystemClock::Instance());
  auto r = api.ListDomains();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("/nonexistent/dir/node.xml"), std::string::npos)
      << r.error().message;
}

TEST(LibvirtTestDriverTest, UnknownDomainErrorNamesDomainAndCall) {
  libvirt::RealLibvirtApi api(LibvirtConfig{.uri = "test:///default"}, SystemClock::Instance());
  ASSERT_TRUE(api.ListDomains().ok());
  auto r = api.GetTime("99999999-9999-9999-9999-999999999999", "ghost");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("virDomainLookupByUUIDString(domain 'ghost')"),
            std::string::npos)
      << r.error().message;
}

TEST(LibvirtTestDriverTest, UnsupportedAgentTimeoutIsAnErrorValue) {
  libvirt::RealLibvirtApi api(LibvirtConfig{.uri = "test:///default"}, SystemClock::Instance());
  auto list = api.ListDomains();
  ASSERT_TRUE(list.ok());
  ASSERT_FALSE(list->empty());
  Status st = api.SetAgentTimeout(list->front().uuid.str(), list->front().name.str(), 2);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("virDomainAgentSetResponseTimeout(domain 'test')"), std::string::npos)
      << st.message();
}

}  // namespace
}  // namespace vmtime
