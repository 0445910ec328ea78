// The status page ("/"): query parsing (bad input gets a message, never a
// crash), worst-first ordering, filters, paging bounds, unit formatting,
// escaping of hostile names and parameters, collector error texts, and a
// page size that does not grow with the fleet. Every render uses fixed
// times (kNow), never the system clock.
#include "exporter/exposition/status_page.h"

#include <gtest/gtest.h>

#include <cmath>
#include <regex>
#include <string>
#include <vector>

namespace vmtime {
namespace {

using exposition::ParseStatusQuery;
using exposition::RenderStatusPage;
using exposition::StatusQuery;

constexpr int64_t kS = 1'000'000'000;
constexpr int64_t kNow = 1'764'000'000 * kS;  // 2025-11-24 16:00:00 UTC

VmView Vm(const std::string& name, double score, scoring::Band band,
          scoring::ReasonSet reasons = {}) {
  VmView vm;
  vm.name = name;
  vm.uuid = "uuid-" + name;
  vm.state = DomainState::kRunning;
  vm.agent_up = true;
  vm.agent_attempted = true;
  vm.score.score = score;
  vm.score.band = band;
  vm.score.reasons = reasons;
  scoring::ClockSample sample;
  sample.host_real_ns = kNow - 5 * kS;
  sample.offset_s = 0.0021;
  sample.uncertainty_s = 0.0004;
  vm.last_sample = sample;
  return vm;
}

Snapshot Fleet() {
  using scoring::Band;
  using scoring::Reason;
  Snapshot s;
  s.built_real_ns = kNow - 2 * kS;
  s.libvirt_enabled = true;
  s.libvirt_connected = true;
  s.vms = {Vm("web-1", 97, Band::kGood),
           Vm("db-1", 12, Band::kBad, {Reason::kOffsetCritical, Reason::kStepBackward}),
           Vm("app-2", 55, Band::kDegraded, {Reason::kOffsetHigh}),
           Vm("APP-1", 12, Band::kBad, {Reason::kAgentUnreachable}),
           Vm("cache-1", 80, Band::kDegraded, {Reason::kOffsetElevated})};
  return s;
}

std::string Page(const Snapshot& s, const std::string& query) {
  return RenderStatusPage(s, ParseStatusQuery(query), kNow, "/metrics");
}

// The VM names of the table's rows, in page order.
std::vector<std::string> Rows(const std::string& page) {
  static const std::regex kRow(R"(<td class="vm" data-l="VM" title="[^"]*">([^<]*)</td>)");
  std::vector<std::string> names;
  for (auto it = std::sregex_iterator(page.begin(), page.end(), kRow); it != std::sregex_iterator();
       ++it) {
    names.push_back((*it)[1]);
  }
  return names;
}

bool Has(const std::string& page, const std::string& text) {
  return page.find(text) != std::string::npos;
}

TEST(StatusPage, WorstFirstByShownScoreThenBandThenName) {
  Snapshot s = Fleet();
  // Same score, different band: the worse band first.
  s.vms.push_back(Vm("z-degraded", 12, scoring::Band::kDegraded));
  s.vms.push_back(Vm("nan", std::nan(""), scoring::Band::kBad));
  // 12.4 reads "12" like db-1's 12: ordered by name among the "12"s, not by decimals.
  s.vms.push_back(Vm("b-12.4", 12.4, scoring::Band::kBad));
  s.vms.push_back(Vm("c-11.6", 11.6, scoring::Band::kBad));
  EXPECT_EQ(Rows(Page(s, "")),
            (std::vector<std::string>{"nan", "APP-1", "b-12.4", "c-11.6", "db-1", "z-degraded",
                                      "app-2", "cache-1", "web-1"}));
}

TEST(StatusPage, FiltersByNameReasonAndBand) {
  const Snapshot s = Fleet();
  EXPECT_EQ(Rows(Page(s, "q=app")), (std::vector<std::string>{"APP-1", "app-2"}));
  EXPECT_EQ(Rows(Page(s, "q=uuid-web")), (std::vector<std::string>{"web-1"}));
  EXPECT_EQ(Rows(Page(s, "band=degraded")), (std::vector<std::string>{"app-2", "cache-1"}));
  EXPECT_EQ(Rows(Page(s, "reason=step_backward")), (std::vector<std::string>{"db-1"}));
  EXPECT_EQ(Rows(Page(s, "q=app&band=bad")), (std::vector<std::string>{"APP-1"}));
  EXPECT_TRUE(Rows(Page(s, "q=nothing-like-this")).empty());
  const std::string page = Page(s, "q=app");
  EXPECT_TRUE(Has(page, "Showing 1&ndash;2 of 2 matching VMs (1 bad, 1 degraded, 0 good)")) << page;
  EXPECT_TRUE(Has(page, "5 VMs: <a class=\"bad\" href=\"?band=bad\">2 bad</a>")) << page;
  // The form shows what is applied, so the link can be edited and shared.
  EXPECT_TRUE(Has(page, "name=\"q\" maxlength=\"200\" value=\"app\""));
  EXPECT_TRUE(Has(Page(s, "band=bad"), "<option value=\"bad\" selected>bad</option>"));
  EXPECT_TRUE(Has(Page(s, "reason=offset_high"),
                  "<option value=\"offset_high\" selected>offset_high (1)</option>"));
  EXPECT_TRUE(Has(Page(s, ""), "<option value=\"\" selected>any</option>"));
}

TEST(StatusPage, PagingIsBoundedAndLinked) {
  Snapshot s;
  for (int i = 0; i < 7; ++i)
    s.vms.push_back(Vm("vm-" + std::to_string(i), 50, scoring::Band::kBad));
  std::string page = Page(s, "limit=3");
  EXPECT_EQ(Rows(page), (std::vector<std::string>{"vm-0", "vm-1", "vm-2"}));
  EXPECT_TRUE(Has(page, "Showing 1&ndash;3 of 7 VMs")) << page;
  EXPECT_TRUE(Has(page, "<a href=\"?limit=3&amp;offset=3\">Next &rsaquo;</a>"));
  EXPECT_TRUE(Has(page, "<a href=\"?limit=3&amp;offset=6\">Last &raquo;</a>"));
  EXPECT_TRUE(Has(page, "<span class=\"mute\">&laquo; First</span>"));

  page = Page(s, "limit=3&offset=6");
  EXPECT_EQ(Rows(page), (std::vector<std::string>{"vm-6"}));
  EXPECT_TRUE(Has(page, "Showing 7&ndash;7 of 7 VMs"));
  EXPECT_TRUE(Has(page, "<a href=\"?limit=3&amp;offset=3\">&lsaquo; Previous</a>"));
  EXPECT_TRUE(Has(page, "<span class=\"mute\">Next &rsaquo;</span>"));

  // An offset inside a page: Previous goes back by one limit, never below 0.
  page = Page(s, "limit=3&offset=2");
  EXPECT_EQ(Rows(page), (std::vector<std::string>{"vm-2", "vm-3", "vm-4"}));
  EXPECT_TRUE(Has(page, "<a href=\"?limit=3\">&lsaquo; Previous</a>")) << page;

  // Past the end: no rows, a message and a way back; never a crash.
  page = Page(s, "offset=18446744073709551615");
  EXPECT_TRUE(Rows(page).empty());
  EXPECT_TRUE(Has(page, "offset 18446744073709551615 is past the last of the 7 matching VMs"));
  EXPECT_TRUE(Has(page, "<a href=\"?\">&laquo; First</a>"));
}

TEST(StatusPage, BadParametersAreNamedAndDefaultsUsed) {
  struct Case {
    const char* query;
    const char* message;
  };
  for (const Case& c : {
           Case{"limit=0", "limit &quot;0&quot; is not a whole number of rows from 1 to 500"},
           Case{"limit=ten", "limit &quot;ten&quot; is not a whole number"},
           Case{"limit=-5", "limit &quot;-5&quot; is not a whole number"},
           Case{"limit=100000", "limit 100000 is above the maximum of 500 rows per page"},
           Case{"limit=99999999999999999999999", "is not a whole number"},
           Case{"offset=-1", "offset &quot;-1&quot; is not a whole number of rows"},
           Case{"band=awful", "band &quot;awful&quot; is not a band (good, degraded or bad)"},
           Case{"reason=slow",
                "reason &quot;slow&quot; is not a reason name (one of offset_elevated"},
           Case{"group=pr%3Cod", "group &quot;pr&lt;od&quot;: group name may hold only letters"},
           Case{"colour=red", "unknown parameter &quot;colour&quot; ignored"},
       }) {
    const StatusQuery q = ParseStatusQuery(c.query);
    EXPECT_EQ(q.problems.size(), 1u) << c.query;
    const std::string page = RenderStatusPage(Fleet(), q, kNow, "/metrics");
    EXPECT_TRUE(Has(page, c.message)) << c.query << "\n" << page.substr(0, 6000);
    EXPECT_TRUE(Has(page, "class=\"problems\" role=\"alert\"")) << c.query;
  }
  EXPECT_EQ(ParseStatusQuery("limit=100000").limit, exposition::kStatusMaxLimit);
  EXPECT_EQ(ParseStatusQuery("limit=0").limit, exposition::kStatusDefaultLimit);
  EXPECT_EQ(ParseStatusQuery("offset=-1").offset, 0u);
  // A valid query has no problems and no alert box.
  const StatusQuery ok = ParseStatusQuery("q=&reason=any&band=&limit=25&offset=50&&");
  EXPECT_TRUE(ok.problems.empty());
  EXPECT_EQ(ok.limit, 25u);
  EXPECT_EQ(ok.offset, 50u);
  EXPECT_FALSE(ok.reason || ok.band);
  EXPECT_FALSE(Has(Page(Fleet(), ""), "class=\"problems\""));
}

TEST(StatusPage, QueryDecoding) {
  EXPECT_EQ(ParseStatusQuery("q=web+1").name, "web 1");
  EXPECT_EQ(ParseStatusQuery("q=a%2Fb%26c").name, "a/b&c");
  EXPECT_EQ(ParseStatusQuery("q=100%").name, "100%");  // malformed escape kept literally
  EXPECT_EQ(ParseStatusQuery("q=%zz").name, "%zz");
  EXPECT_EQ(ParseStatusQuery("q=a%00b%0Ac").name, "abc");  // control characters dropped
  EXPECT_EQ(ParseStatusQuery("%71=x").name, "x");          // encoded key
  EXPECT_EQ(ParseStatusQuery("q=a&q=b").name, "b");        // the last one counts
  EXPECT_EQ(ParseStatusQuery("band=bad").band, scoring::Band::kBad);
  EXPECT_EQ(ParseStatusQuery("reason=clock_stopped").reason, scoring::Reason::kClockStopped);
  const StatusQuery long_q = ParseStatusQuery("q=" + std::string(201, 'x'));
  EXPECT_TRUE(long_q.name.empty());
  EXPECT_EQ(long_q.problems.size(), 1u);
  // Links carry the filters percent-encoded (then HTML-escaped).
  const std::string page = Page(Fleet(), "q=a%26b+c&limit=1");
  EXPECT_TRUE(Has(page, "value=\"a&amp;b c\"")) << page;
}

TEST(StatusPage, HostileNamesAndParametersAreEscaped) {
  Snapshot s = Fleet();
  VmView evil = Vm("<script>alert(1)</script>", 1, scoring::Band::kBad);
  evil.uuid = "u\"><img src=x onerror=alert(1)>";
  evil.agent_up = false;
  evil.agent_error = "<b>agent</b> said \"no\"";
  s.vms.push_back(evil);
  s.collectors.push_back({"chrony", false, 0.01, kNow - kS, "<iframe> refused"});
  for (const std::string query : {"", "q=%3Cscript%3E", "reason=%3Cscript%3Ealert(1)%3C/script%3E",
                                  "%3Cscript%3E=%3Cscript%3E", "band=%22%3E%3Cscript%3E",
                                  "limit=%3Cscript%3E", "offset=%3Cb%3E"}) {
    const std::string page = Page(s, query);
    EXPECT_FALSE(Has(page, "<script")) << query;
    EXPECT_FALSE(Has(page, "<img")) << query;
    EXPECT_FALSE(Has(page, "<iframe")) << query;
    EXPECT_FALSE(Has(page, "<b>")) << query;
  }
  const std::string page = Page(s, "");
  EXPECT_TRUE(Has(page, "&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_TRUE(Has(page, "title=\"uuid u&quot;&gt;&lt;img src=x onerror=alert(1)&gt;\""));
  EXPECT_TRUE(Has(page, "<small>&lt;b&gt;agent&lt;/b&gt; said &quot;no&quot;</small>"));
  EXPECT_TRUE(Has(Page(s, "q=%3Cscript%3E"), "value=\"&lt;script&gt;\""));
}

// CSP-friendly: one <style>, no script, no external asset.
TEST(StatusPage, SelfContainedForAStrictCsp) {
  const std::string page = Page(Fleet(), "");
  EXPECT_FALSE(Has(page, "<script"));
  EXPECT_FALSE(Has(page, " style=\""));
  EXPECT_FALSE(Has(page, "http://"));
  EXPECT_FALSE(Has(page, "https://"));
  EXPECT_FALSE(std::regex_search(page, std::regex(" on[a-z]+="))) << "inline event handler";
  EXPECT_EQ(page.find("<style>"), page.rfind("<style>"));
  EXPECT_TRUE(
      Has(page, "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
  EXPECT_TRUE(Has(page, "@media (max-width:720px)"));
}

TEST(StatusPage, Units) {
  using exposition::FormatSignedDuration;
  using exposition::FormatUncertainty;
  EXPECT_EQ(FormatSignedDuration(0), "0 s");
  EXPECT_EQ(FormatSignedDuration(3e-6), "+3.0 \u00b5s");
  EXPECT_EQ(FormatSignedDuration(-0.000412), "-412 \u00b5s");
  EXPECT_EQ(FormatSignedDuration(0.0021), "+2.10 ms");
  EXPECT_EQ(FormatSignedDuration(-0.25), "-250 ms");
  EXPECT_EQ(FormatSignedDuration(1.5), "+1.50 s");
  EXPECT_EQ(FormatSignedDuration(-42), "-42.0 s");
  EXPECT_EQ(FormatSignedDuration(-480), "-8.0 min");
  EXPECT_EQ(FormatSignedDuration(5400), "+1.5 h");
  EXPECT_EQ(FormatSignedDuration(-3 * 86400.0), "-3.0 d");
  // The test driver's frozen 1989 clock: decades, grouped.
  EXPECT_EQ(FormatSignedDuration(-(1'764'000'000.0 - 627'319'920.0)), "-13,156.0 d");
  EXPECT_EQ(FormatSignedDuration(86400 * 2.96), "+3.0 d");
  EXPECT_EQ(FormatSignedDuration(std::nan("")), "unknown");
  EXPECT_EQ(FormatUncertainty(0.0004), "\u00b1400 \u00b5s");
  EXPECT_EQ(FormatUncertainty(-0.0004), "\u00b1400 \u00b5s");  // unsigned
  EXPECT_EQ(FormatUncertainty(2.5), "\u00b12.50 s");

  using exposition::FormatAge;
  EXPECT_EQ(FormatAge(kNow, kNow), "0 s ago");
  EXPECT_EQ(FormatAge(kNow, kNow - 5 * kS), "5 s ago");
  EXPECT_EQ(FormatAge(kNow, kNow - 119 * kS), "119 s ago");
  EXPECT_EQ(FormatAge(kNow, kNow - 150 * kS), "2 min ago");
  EXPECT_EQ(FormatAge(kNow, kNow - 3 * 3600 * kS), "3.0 h ago");
  EXPECT_EQ(FormatAge(kNow, kNow - 10 * 86400 * kS), "10 d ago");
  EXPECT_EQ(FormatAge(kNow, kNow + 3 * kS), "in the future (3 s)");

  using exposition::CountNoun;
  EXPECT_EQ(CountNoun(0, "domain", "domains"), "0 domains");
  EXPECT_EQ(CountNoun(1, "domain", "domains"), "1 domain");
  EXPECT_EQ(CountNoun(10000, "domain", "domains"), "10,000 domains");
  EXPECT_EQ(CountNoun(1234567, "VM", "VMs"), "1,234,567 VMs");
  EXPECT_EQ(exposition::FormatUtc(kNow), "2025-11-24 16:00:00 UTC");
}

TEST(StatusPage, RowShowsUnitsAgeAndAgent) {
  Snapshot s = Fleet();
  s.vms.resize(1);
  const std::string page = Page(s, "");
  EXPECT_TRUE(Has(page, "<td class=\"n\" data-l=\"Offset\">+2.10 ms</td>")) << page;
  EXPECT_TRUE(Has(page, "<td class=\"n\" data-l=\"Uncertainty\">\u00b1400 \u00b5s</td>"));
  EXPECT_TRUE(Has(page, "<td class=\"n\" data-l=\"Last sample\">5 s ago</td>"));
  EXPECT_TRUE(Has(page, "<td class=\"agent\" data-l=\"Agent\">up</td>"));
  EXPECT_TRUE(Has(page, "connected, 1 domain</dd>"));
  EXPECT_TRUE(Has(page, "1 VM: "));
  EXPECT_TRUE(Has(page,
                  "Page generated 2025-11-24 16:00:00 UTC; data from the snapshot of "
                  "2025-11-24 15:59:58 UTC (2 s ago)."));
  s.vms[0].last_sample.reset();
  EXPECT_TRUE(Has(Page(s, ""), "data-l=\"Last sample\">none yet</td>"));
}

TEST(StatusPage, HostStateAndCollectorErrors) {
  Snapshot s = Fleet();
  scoring::HostReference ref;
  ref.state = scoring::SyncState::kUnsynchronised;
  ref.source = "kernel";
  s.host_reference = ref;
  s.chrony_up = false;
  s.libvirt_connected = false;
  s.collectors = {
      {"chrony", false, 0.001, kNow - 3 * kS,
       "connect unix:///run/chrony/chronyd.sock: No such file or directory"},
      {"libvirt", false, 0.2, kNow - 4 * kS, "cannot connect to qemu:///system: Permission denied"},
      {"guest_status", false, 1, kNow - 10 * kS, "deadline exceeded"},
      {"timex", true, 0, kNow - kS, ""}};
  TimexObservation timex;
  timex.synchronised = false;
  timex.max_error_s = 16;
  s.timex = timex;
  s.reload.last_successful = false;
  const std::string page = Page(s, "");
  EXPECT_TRUE(Has(page, "<span class=\"bad\">unsynchronised</span> according to the kernel"));
  EXPECT_TRUE(Has(page,
                  "<span class=\"bad\">not answering</span>: connect "
                  "unix:///run/chrony/chronyd.sock: No such file or directory "
                  "<span class=\"mute\">(3 s ago)</span>"))
      << page;
  EXPECT_TRUE(Has(page,
                  "<span class=\"bad\">not connected</span>: cannot connect to "
                  "qemu:///system: Permission denied"));
  EXPECT_TRUE(Has(page,
                  "<dt>guest_status collector</dt><dd><span class=\"bad\">failing</span>: "
                  "deadline exceeded"));
  EXPECT_TRUE(Has(page, "maximum error 16.0 s"));
  EXPECT_TRUE(Has(page, "the last reload failed"));

  ChronyObservation chrony;
  chrony.tracking.stratum = 3;
  chrony.tracking.reference_name = "192.0.2.1";
  chrony.tracking.system_time_offset_s = 1.2e-5;
  s.chrony = chrony;
  s.chrony_up = true;
  s.collectors[0] = {"chrony", true, 0.001, kNow - kS, ""};
  ref.state = scoring::SyncState::kSynchronised;
  ref.source = "chrony";
  ref.stratum = 3;
  s.host_reference = ref;
  const std::string ok = Page(s, "");
  EXPECT_TRUE(Has(ok, "<dd>synchronised according to chronyd, stratum 3")) << ok;
  EXPECT_TRUE(Has(ok, "answering: stratum 3, reference 192.0.2.1, system time +12 \u00b5s"));

  Snapshot none;
  EXPECT_TRUE(Has(RenderStatusPage(none, StatusQuery{}, kNow, "/metrics"),
                  "no collection round has finished yet"));
}

// The page is bounded by `limit`, not by the fleet: 10,000 VMs with long
// names and every reason stay far below the 2.2 MB the full table took.
TEST(StatusPage, SizeIsBoundedAtTenThousandVms) {
  Snapshot s;
  s.libvirt_enabled = s.libvirt_connected = true;
  scoring::ReasonSet all;
  for (int r = 0; r < scoring::kReasonCount; ++r) all.insert(static_cast<scoring::Reason>(r));
  for (int i = 0; i < 10'000; ++i) {
    s.vms.push_back(Vm("a-rather-long-domain-name-for-a-vm-" + std::to_string(i), i % 100,
                       scoring::Band::kBad, all));
  }
  const std::string page = Page(s, "");
  EXPECT_EQ(Rows(page).size(), 100u);
  EXPECT_LT(page.size(), 200'000u) << page.size();
  EXPECT_TRUE(Has(page, "10,000 VMs: "));
  EXPECT_TRUE(Has(page, "Showing 1&ndash;100 of 10,000 VMs"));
  EXPECT_TRUE(Has(page, "connected, 10,000 domains"));
  const std::string widest = Page(s, "limit=500");
  EXPECT_EQ(Rows(widest).size(), 500u);
  EXPECT_LT(widest.size(), 1'000'000u) << widest.size();
  // Worst first across the whole fleet, not just the first rows read.
  EXPECT_EQ(Rows(page).front(), "a-rather-long-domain-name-for-a-vm-0");
  EXPECT_EQ(Rows(Page(s, "offset=9999")),
            (std::vector<std::string>{"a-rather-long-domain-name-for-a-vm-9999"}));
}

}  // namespace
}  // namespace vmtime
