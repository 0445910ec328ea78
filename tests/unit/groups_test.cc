// Groups and labels (issue 16): the metadata parser and its rules, the
// metadata reader (read once, re-read on events, a hung read never holds up
// anything else), config groups.rules, the store's per-group spread and the
// group_skew reason, and how they reach /metrics and the status page.
// Worker threads are real; time is FakeClock. The only real-time waits are
// bounded waits for the reader's worker.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "exporter/collectors/libvirt/domain_metadata.h"
#include "exporter/collectors/libvirt/metadata_reader.h"
#include "exporter/config/config.h"
#include "exporter/exposition/metrics.h"
#include "exporter/exposition/status_page.h"
#include "exporter/exposition/views.h"
#include "exporter/model/domain_labels.h"
#include "exporter/store/store.h"
#include "scoring/score.h"

namespace vmtime {
namespace {

using libvirt::ParseNovaMetadata;
using libvirt::ParseVmtimeMetadata;
using std::chrono::milliseconds;

// ---- the parser ----

TEST(DomainMetadataTest, ReadsGroupAndLabelsAsLibvirtReturnsThem) {
  // What `virsh metadata --key vmtime --set` stores and virDomainGetMetadata returns.
  const auto r = ParseVmtimeMetadata(
      "<vmtime xmlns=\"urn:vmtime-exporter:metadata:1\">\n"
      "  <group>mysql</group>\n"
      "  <label name=\"team\">db</label>\n"
      "  <label name=\"role\">replica</label>\n"
      "</vmtime>\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->metadata.group, "mysql");
  const std::vector<std::pair<std::string, std::string>> want = {{"role", "replica"},
                                                                 {"team", "db"}};
  EXPECT_EQ(r->metadata.labels, want) << "sorted by name";
  EXPECT_TRUE(r->problems.empty());
}

TEST(DomainMetadataTest, PrefixedElementsEntitiesCdataAndComments) {
  const auto r = ParseVmtimeMetadata(
      "<?xml version=\"1.0\"?><!-- c --><vm:vmtime xmlns:vm='urn:vmtime-exporter:metadata:1'>"
      "<vm:group> web-eu.1 </vm:group><vm:label vm:name='owner'>a&amp;b &#x263A;&#65;"
      "<![CDATA[<x>]]></vm:label><!-- done --></vm:vmtime>");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->metadata.group, "web-eu.1") << "surrounding whitespace trimmed";
  ASSERT_EQ(r->metadata.labels.size(), 1u);
  EXPECT_EQ(r->metadata.labels[0].second,
            "a&b \u263A"
            "A<x>");
}

TEST(DomainMetadataTest, BadEntriesAreLeftOutAndNamed) {
  std::string many;
  for (int i = 0; i < 12; ++i) many += "<label name=\"l" + std::to_string(i) + "\">v</label>";
  const auto r = ParseVmtimeMetadata(
      "<vmtime><group>my sql</group><colour>red</colour><label name=\"1bad\">x</label>"
      "<label name=\"__meta\">x</label><label name=\"ok\">" +
      std::string(200, 'v') + "</label><label name=\"ctl\">a&#x7;b</label><label>x</label>" + many +
      "</vmtime>");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->metadata.group, "") << "invalid group left out";
  EXPECT_EQ(r->metadata.labels.size(), DomainMetadata::kMaxLabels) << "label count bounded";
  std::string all;
  for (const auto& p : r->problems) all += p + "\n";
  for (const char* want : {"group name may hold only", "unknown element <colour>", "'1bad' is not",
                           "starts with __", "longer than 128 bytes", "control character",
                           "without a name attribute", "more than 8 labels"}) {
    EXPECT_NE(all.find(want), std::string::npos) << want << " in\n" << all;
  }
}

TEST(DomainMetadataTest, NotWellFormedIsAnErrorNamingWhere) {
  for (const char* bad : {"", "vmtime", "<vmtime>", "<vmtime><group>a</vmtime>", "<vmtime a=b/>",
                          "<vmtime>&bogus;</vmtime>", "<vmtime>&#0;</vmtime>", "<vmtime/><other/>",
                          "<!DOCTYPE x><vmtime/>", "<vmtime a='1' a='2'/>", "<vmtime/x>",
                          "<vmtime>&#x110000;</vmtime>"}) {
    const auto r = ParseVmtimeMetadata(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.error().message.find("metadata"), std::string::npos) << bad;
    }
  }
  EXPECT_FALSE(ParseVmtimeMetadata("<other/>").ok()) << "wrong root";
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "<a>";
  EXPECT_FALSE(ParseVmtimeMetadata("<vmtime>" + deep).ok()) << "depth bounded";
  EXPECT_FALSE(ParseVmtimeMetadata("<vmtime>" + std::string(70000, ' ') + "</vmtime>").ok())
      << "size bounded";
  std::string wide = "<vmtime>";
  for (int i = 0; i < 600; ++i) wide += "<x/>";
  EXPECT_FALSE(ParseVmtimeMetadata(wide + "</vmtime>").ok()) << "element count bounded";
}

TEST(DomainMetadataTest, NovaInstanceGivesThreeLabels) {
  const auto r = ParseNovaMetadata(
      "<nova:instance xmlns:nova=\"http://openstack.org/xmlns/libvirt/nova/1.1\">"
      "<nova:package version=\"27.0.0\"/><nova:name>db-1</nova:name>"
      "<nova:creationTime>2026-01-01 00:00:00</nova:creationTime>"
      "<nova:flavor name=\"m1.small\"><nova:memory>2048</nova:memory></nova:flavor>"
      "<nova:owner><nova:user uuid=\"u\">admin</nova:user>"
      "<nova:project uuid=\"p\">payments</nova:project></nova:owner></nova:instance>");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const std::vector<std::pair<std::string, std::string>> want = {
      {"nova_flavor", "m1.small"}, {"nova_instance", "db-1"}, {"nova_project", "payments"}};
  EXPECT_EQ(r->metadata.labels, want);
  EXPECT_EQ(r->metadata.group, "");
}

TEST(DomainLabelsTest, Rules) {
  EXPECT_EQ(CheckGroupName("mysql-eu_1.a:b"), "");
  EXPECT_NE(CheckGroupName(""), "");
  EXPECT_NE(CheckGroupName(std::string(65, 'a')), "");
  EXPECT_NE(CheckGroupName("a/b"), "");
  EXPECT_EQ(CheckLabelName("_team9"), "");
  EXPECT_NE(CheckLabelName("9team"), "");
  EXPECT_NE(CheckLabelName("te-am"), "");
  EXPECT_EQ(CheckLabelValue("ünïcode ☺"), "");
  EXPECT_NE(CheckLabelValue("\xC0\xAF"), "") << "overlong UTF-8";
  EXPECT_NE(CheckLabelValue("\xED\xA0\x80"), "") << "surrogate";
  EXPECT_NE(CheckLabelValue("a\nb"), "");
  EXPECT_NE(CheckLabelValue(""), "");
}

// ---- the reader ----

// A LibvirtApi with chosen metadata per domain; a read can be made to hang.
class MetadataApi : public libvirt::LibvirtApi {
 public:
  Result<std::vector<libvirt::DomainInfo>> ListDomains() override { return domains; }
  bool Connected() const override { return true; }
  uint64_t ConnectionGeneration() const override { return generation; }
  Result<libvirt::GuestTime> GetTime(const std::string&, const std::string&) override {
    return Error{"unused"};
  }
  Status SetAgentTimeout(const std::string&, const std::string&, int) override {
    return Status::Ok();
  }
  void SetEventHandler(libvirt::DomainEventHandler) override {}
  Result<std::optional<std::string>> GetMetadata(const std::string& uuid, const std::string&,
                                                 const std::string& ns) override {
    std::unique_lock lock(mu);
    ++reads[uuid];
    cv.notify_all();
    cv.wait(lock, [&] { return !hang.contains(uuid); });
    if (ns != libvirt::kMetadataNamespace) return std::optional<std::string>();
    auto it = xml.find(uuid);
    if (it == xml.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  void Set(const std::string& uuid, std::string text) {
    std::lock_guard lock(mu);
    xml[uuid] = std::move(text);
  }
  int Reads(const std::string& uuid) {
    std::lock_guard lock(mu);
    return reads[uuid];
  }
  bool WaitReads(const std::string& uuid, int n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, milliseconds(10'000), [&] { return reads[uuid] >= n; });
  }
  void Release(const std::string& uuid) {
    std::lock_guard lock(mu);
    hang.erase(uuid);
    cv.notify_all();
  }

  std::vector<libvirt::DomainInfo> domains;
  uint64_t generation = 1;
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::string> xml;
  std::map<std::string, int> reads;
  std::set<std::string> hang;
};

libvirt::DomainInfo Dom(const std::string& uuid) {
  return {uuid, "vm-" + uuid, DomainState::kRunning};
}

TEST(MetadataReaderTest, ReadsAtDiscoveryOnEventsAndAfterReconnectOnly) {
  FakeClock clock;
  auto api = std::make_shared<MetadataApi>();
  api->Set("a", "<vmtime><group>mysql</group></vmtime>");
  api->domains = {Dom("a"), Dom("b")};
  libvirt::MetadataOptions o;
  o.background_tick = false;
  libvirt::MetadataReader reader(clock, api, o);
  std::atomic<int> wakes{0};
  reader.SetWakeup([&] { ++wakes; });

  reader.Reconcile(api->domains, 1);
  ASSERT_TRUE(reader.WaitIdle(milliseconds(10'000)));
  auto changed = reader.TakeChanged();
  ASSERT_EQ(changed.size(), 1u) << "b has no metadata: no news";
  EXPECT_EQ(changed[0].first, "a");
  EXPECT_EQ(changed[0].second.group, "mysql");
  EXPECT_EQ(api->Reads("b"), 1);
  EXPECT_GE(wakes.load(), 1);

  // Further rounds read nothing.
  for (int i = 0; i < 5; ++i) reader.Reconcile(api->domains, 1);
  ASSERT_TRUE(reader.WaitIdle(milliseconds(10'000)));
  EXPECT_EQ(api->Reads("a"), 1);
  EXPECT_TRUE(reader.TakeChanged().empty());

  // The metadata-change event re-reads one domain; a change is handed out once.
  api->Set("a", "<vmtime><group>pg</group><label name=\"team\">db</label></vmtime>");
  reader.Invalidate("a", "vm-a");
  ASSERT_TRUE(reader.WaitIdle(milliseconds(10'000)));
  changed = reader.TakeChanged();
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].second.group, "pg");
  EXPECT_EQ(changed[0].second.labels.size(), 1u);
  EXPECT_EQ(api->Reads("b"), 1);
  // An event without a change hands out nothing.
  reader.Invalidate("a", "vm-a");
  ASSERT_TRUE(reader.WaitIdle(milliseconds(10'000)));
  EXPECT_TRUE(reader.TakeChanged().empty());

  // A reconnect re-reads everyone (events may have been missed).
  reader.Reconcile(api->domains, 2);
  ASSERT_TRUE(reader.WaitIdle(milliseconds(10'000)));
  EXPECT_EQ(api->Reads("b"), 2);
}

TEST(MetadataReaderTest, AHungReadIsAbandonedAndOthersGoOn) {
  FakeClock clock;
  auto api = std::make_shared<MetadataApi>();
  api->hang.insert("stuck");
  api->Set("ok", "<vmtime><group>g</group></vmtime>");
  api->domains = {Dom("stuck"), Dom("ok")};
  libvirt::MetadataOptions o;
  o.background_tick = false;
  o.call_deadline_s = 2;
  libvirt::MetadataReader reader(clock, api, o);
  reader.Reconcile(api->domains, 1);
  ASSERT_TRUE(api->WaitReads("stuck", 1));
  EXPECT_TRUE(reader.TakeChanged().empty()) << "taking news never waits for a read";
  clock.AdvanceSeconds(3);
  reader.Tick();  // abandons the hung read, starts a replacement worker
  ASSERT_TRUE(api->WaitReads("ok", 1));
  ASSERT_TRUE(reader.WaitIdle(milliseconds(10'000)));
  auto changed = reader.TakeChanged();
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].first, "ok");
  api->Release("stuck");  // the late result is dropped
}

// Domain "a" holding metadata `xml`, its reader (no background tick), read
// once.
struct OneDomainReader {
  explicit OneDomainReader(const std::string& xml) : api(std::make_shared<MetadataApi>()) {
    api->Set("a", xml);
    api->domains = {Dom("a")};
    libvirt::MetadataOptions o;
    o.background_tick = false;
    reader = std::make_unique<libvirt::MetadataReader>(clock, api, o);
    reader->Reconcile(api->domains, 1);
    EXPECT_TRUE(reader->WaitIdle(milliseconds(10'000)));
  }
  // "a" now holds `xml` and is read again (a metadata-change event).
  void Reread(const std::string& xml) {
    api->Set("a", xml);
    reader->Invalidate("a", "vm-a");
    EXPECT_TRUE(reader->WaitIdle(milliseconds(10'000)));
  }
  FakeClock clock;
  std::shared_ptr<MetadataApi> api;
  std::unique_ptr<libvirt::MetadataReader> reader;
};

TEST(MetadataReaderTest, NotWellFormedMetadataCountsAsNone) {
  OneDomainReader d("<vmtime><group>x</group>");
  EXPECT_TRUE(d.reader->TakeChanged().empty()) << "counts as none";
  // From a group to not well-formed: the group goes.
  d.Reread("<vmtime><group>x</group></vmtime>");
  ASSERT_EQ(d.reader->TakeChanged().size(), 1u);
  d.Reread("<vmtime><group>x</group>");
  auto changed = d.reader->TakeChanged();
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].second, DomainMetadata{});
}

// A removed group is news until it is taken, even when the domain is read
// again (and found still without metadata) before the store takes it.
TEST(MetadataReaderTest, ARemovedGroupStaysNewsUntilTaken) {
  OneDomainReader d("<vmtime><group>x</group></vmtime>");
  ASSERT_EQ(d.reader->TakeChanged().size(), 1u);
  d.Reread("");  // removed,
  d.Reread("");  // then read again before anyone takes it
  auto changed = d.reader->TakeChanged();
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].second, DomainMetadata{});
  EXPECT_TRUE(d.reader->TakeChanged().empty());
  d.Reread("");  // still none: no news
  EXPECT_TRUE(d.reader->TakeChanged().empty());
}

// ---- config ----

TEST(GroupsConfigTest, RulesAndMetadataSwitches) {
  auto c = ParseConfig(
      "libvirt: {metadata: false, nova_metadata: true}\n"
      "groups:\n  rules:\n    - {match: 'mysql-*', group: mysql}\n    - {match: 'web?', group: "
      "web}\n"
      "scoring: {group_skew_s: 250ms}\n",
      "t.yml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_FALSE(c->libvirt.metadata);
  EXPECT_TRUE(c->libvirt.nova_metadata);
  ASSERT_EQ(c->groups.rules.size(), 2u);
  EXPECT_EQ(c->groups.rules[1].match, "web?");
  EXPECT_DOUBLE_EQ(c->scoring.group_skew_s, 0.25);
  for (const char* bad :
       {"groups: {rules: [{match: a, group: 'b c'}]}", "groups: {rules: [{match: '', group: b}]}",
        "groups: {rules: [{group: b}]}", "groups: {rules: [{match: a}]}",
        "groups: {rules: [{match: a, group: b, colour: red}]}", "groups: {rules: x}",
        "scoring: {group_skew_s: 0s}"}) {
    auto r = ParseConfig(bad, "t.yml");
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.error().message.find("t.yml:"), std::string::npos) << bad;
    }
  }
  auto d = ParseConfig(DefaultConfigYaml(), "<built-in>");
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_TRUE(d->libvirt.metadata);
  EXPECT_FALSE(d->libvirt.nova_metadata);
  EXPECT_TRUE(d->groups.rules.empty());
}

// ---- store, scoring, exposition ----

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kRealBase = 1'800'000'000 * kSecond;

DomainObservation Sampled(const std::string& name, double offset_s, int64_t mono_ns) {
  DomainObservation d;
  d.name = name;
  d.uuid = "u-" + name;
  d.state = DomainState::kRunning;
  d.agent_up = true;
  scoring::ClockSample s;
  s.host_mono_ns = mono_ns;
  s.host_real_ns = kRealBase + mono_ns;
  s.guest_real_ns = s.host_real_ns + static_cast<int64_t>(offset_s * 1e9);
  s.offset_s = offset_s;
  s.uncertainty_s = 0.001;
  d.sample = s;
  return d;
}

bool HasReason(const VmView& v, scoring::Reason r) {
  return std::find(v.score.reasons.begin(), v.score.reasons.end(), r) != v.score.reasons.end();
}

TEST(GroupsStoreTest, SpreadPerGroupReasonOnMembersAndLabelsOnInfo) {
  auto c = ParseConfig("groups: {rules: [{match: 'web-*', group: web}, {match: '*', group: all}]}",
                       "t.yml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  Store store(*c);
  Observations obs;
  obs.libvirt.emplace();
  obs.libvirt->connected = true;
  const int64_t t = 100 * kSecond;
  obs.libvirt->domains = {Sampled("db-primary", 0.002, t), Sampled("db-replica", -45.0, t),
                          Sampled("web-1", 0.001, t), Sampled("web-2", 0.003, t),
                          Sampled("lonely", 0.0, t)};
  DomainMetadata mysql;
  mysql.group = "mysql";
  mysql.labels = {{"team", "db"}};
  obs.libvirt->metadata = {{"u-db-primary", mysql}, {"u-db-replica", mysql}};
  // web-1 has metadata without a group: the rules apply.
  obs.libvirt->metadata.push_back({"u-web-1", DomainMetadata{"", {{"tier", "front"}}}});
  store.Apply(obs);
  auto snap = store.Build(t + kSecond, kRealBase + t + kSecond);

  ASSERT_EQ(snap->groups.size(), 3u);
  EXPECT_EQ(snap->groups[0].name, "mysql") << "widest spread first";
  EXPECT_NEAR(snap->groups[0].spread_s, 45.002, 1e-9);
  EXPECT_EQ(snap->groups[0].members, 2);
  EXPECT_EQ(snap->groups[0].measured, 2);
  EXPECT_EQ(snap->groups[0].min_domain, "db-replica");
  EXPECT_EQ(snap->groups[0].max_domain, "db-primary");
  EXPECT_EQ(snap->groups[1].name, "web");
  EXPECT_EQ(snap->groups[2].name, "all");
  EXPECT_EQ(snap->groups[2].members, 1);

  std::map<std::string, const VmView*> vm;
  for (const auto& v : snap->vms) vm[v.name.str()] = &v;
  EXPECT_EQ(vm["web-1"]->group, "web");
  EXPECT_EQ(vm["lonely"]->group, "all");
  EXPECT_TRUE(HasReason(*vm["db-primary"], scoring::Reason::kGroupSkew))
      << "every member of a skewed group: which one is wrong, their own offsets say";
  EXPECT_TRUE(HasReason(*vm["db-replica"], scoring::Reason::kGroupSkew));
  EXPECT_FALSE(HasReason(*vm["web-1"], scoring::Reason::kGroupSkew));
  EXPECT_FALSE(HasReason(*vm["lonely"], scoring::Reason::kGroupSkew));
  EXPECT_EQ(scoring::ReasonName(scoring::Reason::kGroupSkew), "group_skew");

  const std::string text = exposition::RenderText(*snap);
  EXPECT_NE(text.find("vmtime_vm_info{domain=\"db-replica\",uuid=\"u-db-replica\",state=\"running\""
                      ",group=\"mysql\",label_team=\"db\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("vmtime_vm_info{domain=\"web-1\",uuid=\"u-web-1\",state=\"running\","
                      "group=\"web\",label_tier=\"front\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("vmtime_group_offset_spread_seconds{group=\"mysql\"} 45.002"),
            std::string::npos);
  EXPECT_NE(text.find("vmtime_group_members{group=\"all\"} 1"), std::string::npos);
  EXPECT_EQ(text.find("vmtime_group_offset_spread_seconds{group=\"all\"}"), std::string::npos)
      << "no spread with a single measured member";
  EXPECT_EQ(text.find("vmtime_vm_health_score{domain=\"db-replica\",uuid=\"u-db-replica\",group"),
            std::string::npos)
      << "per-VM series keep their label set";

  const auto j = exposition::RenderJson(*snap);
  EXPECT_EQ(j["groups"][0]["group"], "mysql");
  EXPECT_EQ(j["groups"][0]["measured_members"], 2);
  EXPECT_TRUE(j["groups"][2]["offset_spread_seconds"].is_null());
  for (const auto& v : j["vms"]) {
    if (v["domain"] == "db-replica") {
      EXPECT_EQ(v["group"], "mysql");
      EXPECT_EQ(v["labels"]["team"], "db");
    }
    if (v["domain"] == "lonely") {
      EXPECT_TRUE(v["labels"].empty());
    }
  }

  // A metadata change in a harvest moves the VM to another group.
  Observations h;
  h.libvirt.emplace();
  h.libvirt->partial = true;
  h.libvirt->connected = true;
  h.libvirt->metadata = {{"u-db-replica", DomainMetadata{"analytics", {}}}};
  store.Apply(h);
  snap = store.Build(t + 2 * kSecond, kRealBase + t + 2 * kSecond);
  for (const auto& v : snap->vms) {
    if (v.name == "db-replica") {
      EXPECT_EQ(v.group, "analytics");
    }
    if (v.name == "db-primary") {
      EXPECT_FALSE(HasReason(v, scoring::Reason::kGroupSkew));
    }
  }
}

TEST(GroupsStoreTest, StaleAndPausedMembersDoNotHoldTheSpreadOpen) {
  Store store(Config{});
  Observations obs;
  obs.libvirt.emplace();
  obs.libvirt->connected = true;
  const int64_t t = 100 * kSecond;
  DomainObservation paused = Sampled("b", 30.0, t);
  paused.state = DomainState::kPaused;
  obs.libvirt->domains = {Sampled("a", 0.0, t), paused, Sampled("c", 0.5, t)};
  for (const char* u : {"u-a", "u-b", "u-c"}) obs.libvirt->metadata.push_back({u, {"g", {}}});
  store.Apply(obs);
  auto snap = store.Build(t + kSecond, kRealBase + t);
  ASSERT_EQ(snap->groups.size(), 1u);
  EXPECT_EQ(snap->groups[0].members, 3);
  EXPECT_EQ(snap->groups[0].measured, 2);
  EXPECT_NEAR(snap->groups[0].spread_s, 0.5, 1e-9);
  // Two minutes later (libvirt interval 15 s: stale after 30 s) nobody counts.
  snap = store.Build(t + 120 * kSecond, kRealBase + t);
  EXPECT_EQ(snap->groups[0].measured, 0);
}

TEST(GroupsStatusPageTest, GroupFilterAndGroupsList) {
  Snapshot s;
  s.libvirt_enabled = true;
  s.built_real_ns = kRealBase;
  for (const char* name : {"db-1", "db-2", "web-1"}) {
    VmView v;
    v.name = name;
    v.uuid = std::string("u-") + name;
    v.state = DomainState::kRunning;
    v.group = name[0] == 'd' ? "mysql" : "web";
    s.vms.push_back(v);
  }
  s.groups = {{"mysql", 2, 2, 45.0, "db-2", "db-1"}, {"web", 1, 1, 0, "web-1", "web-1"}};
  const auto q = exposition::ParseStatusQuery("group=mysql");
  EXPECT_TRUE(q.problems.empty());
  const std::string page = exposition::RenderStatusPage(s, q, kRealBase, "/metrics");
  EXPECT_NE(page.find(">db-1<"), std::string::npos);
  EXPECT_EQ(page.find(">web-1<small"), std::string::npos) << "filtered out";
  EXPECT_NE(page.find("of 2 matching VMs"), std::string::npos);
  EXPECT_NE(page.find("<h2>Groups</h2>"), std::string::npos);
  EXPECT_LT(page.find("?group=mysql\">mysql</a></td>"), page.find("?group=web\">web</a></td>"))
      << "widest spread first";
  EXPECT_NE(page.find("45.0 s"), std::string::npos) << page.substr(0, 8000);
  EXPECT_NE(page.find("name=\"group\" maxlength=\"64\" value=\"mysql\""), std::string::npos);
}

}  // namespace
}  // namespace vmtime
