// Exposition: a golden file for a fixed snapshot, the names of every family
// and label (prometheus-cpp's own checks, and docs/metrics.md as the
// contract), the JSON view, the status page, and snapshot swaps under
// concurrent scrapes.
//
// Regenerate the golden file after an intended change with:
//   VMTIME_UPDATE_GOLDEN=1 build/tests/exposition_test
#include <gtest/gtest.h>
#include <prometheus/check_names.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "exporter/exposition/metrics.h"
#include "exporter/exposition/views.h"
#include "exporter/store/store.h"

namespace vmtime {
namespace {

constexpr int64_t kS = 1'000'000'000;
const std::string kGolden =
    std::string(VMTIME_SOURCE_DIR) + "/tests/fixtures/exposition.golden.prom";

scoring::ClockSample Sample(int64_t mono_s, double offset_s) {
  scoring::ClockSample s;
  s.host_mono_ns = mono_s * kS;
  s.host_real_ns = 1'764'000'000 * kS + mono_s * kS;
  s.guest_real_ns = s.host_real_ns + static_cast<int64_t>(offset_s * 1e9);
  s.offset_s = offset_s;
  s.uncertainty_s = 0.0004;
  return s;
}

// A fixed store: five VMs (healthy, stepped back 8 minutes, agent down,
// paused, agent not tried yet), timex, and collector runs. Everything is built from constants.
std::shared_ptr<const Snapshot> FixedSnapshot() {
  Config config;
  for (auto& [id, cc] : config.collectors) {
    cc.enabled = id == CollectorId::kLibvirt || id == CollectorId::kTimex;
  }
  Store store(config);
  for (int round = 0; round < 6; ++round) {
    Observations obs;
    LibvirtObservation lv;
    lv.connected = true;
    DomainObservation healthy;
    healthy.name = "web-1";
    healthy.uuid = "11111111-1111-1111-1111-111111111111";
    healthy.state = DomainState::kRunning;
    healthy.agent_up = true;
    healthy.sample = Sample(100 + 15 * round, 0.0021 + 0.00001 * round);
    healthy.rtt_s = 0.0008;
    DomainObservation stepped = healthy;
    stepped.name = "db-1";
    stepped.uuid = "22222222-2222-2222-2222-222222222222";
    stepped.sample = Sample(100 + 15 * round, round < 3 ? 0.01 : -480.0);
    DomainObservation down;
    down.name = "batch-1";
    down.uuid = "33333333-3333-3333-3333-333333333333";
    down.state = DomainState::kRunning;
    down.agent_up = false;
    down.agent_error = "Guest agent is not responding";
    DomainObservation paused = down;
    paused.name = "paused-1";
    paused.uuid = "44444444-4444-4444-4444-444444444444";
    paused.state = DomainState::kPaused;
    paused.agent_error.clear();
    DomainObservation fresh = down;  // its first agent attempt has not finished
    fresh.name = "new-1";
    fresh.uuid = "55555555-5555-5555-5555-555555555555";
    fresh.agent_attempted = false;
    fresh.agent_error.clear();
    lv.domains = {healthy, stepped, down, paused, fresh};
    obs.libvirt = lv;
    store.Apply(obs);
  }
  Observations t;
  TimexObservation tx;
  tx.offset_s = -0.000012;
  tx.frequency_ratio = 1.5e-5;
  tx.max_error_s = 0.25;
  tx.est_error_s = 0.001;
  tx.status = 0x2001;
  tx.synchronised = true;
  tx.tick_s = 0.01;
  tx.tai_offset_s = 37;
  tx.time_constant = 7;
  t.timex = tx;
  store.Apply(t);
  store.RecordRun({"libvirt", true, 0.125, 1'764'000'190 * kS, ""});
  store.RecordRun({"timex", true, 0.0001, 1'764'000'190 * kS, ""});
  store.SetReload({true, 1'764'000'000 * kS, "<built-in>"});
  return store.Build(190 * kS, 1'764'000'190 * kS);
}

// A snapshot with every section populated, so that every family and label
// the exposition can write is rendered: collectors, reload, timex, chronyd
// (tracking, a source with sourcestats), NTP (a reachable server and a
// kiss-o'-death), libvirt and a VM with a sample, a UTC offset, drift, guest
// status with an error, every component and every reason.
Snapshot FullSnapshot() {
  Snapshot s;
  s.built_real_ns = 1'764'000'200 * kS;
  s.collectors = {{"chrony", true, 0.01, 1'764'000'190 * kS, ""},
                  {"libvirt", true, 0.125, 1'764'000'190 * kS, ""}};
  s.reload = {true, 1'764'000'000 * kS, "<built-in>"};
  s.events.total_by_type = {{"baseline", 3}, {"reason_raised", 2}};
  s.events.dropped_by_reason = {{"queue_full", 0}, {"size_limit", 0}, {"write_error", 4}};
  scoring::HostReference host;
  host.state = scoring::SyncState::kSynchronised;
  host.source = "chrony";
  s.host_reference = host;
  TimexObservation tx;
  tx.synchronised = true;
  tx.max_error_s = 0.25;
  s.timex = tx;
  s.timex_kvm_artifacts_total = 1;
  s.chrony_up = true;
  ChronyObservation chrony;
  chrony.tracking.reference_id = 0xC0000201;
  chrony.tracking.reference_name = "192.0.2.1";
  chrony.tracking.stratum = 3;
  ChronySource src;
  src.address = src.name = "192.0.2.1";
  src.reachability = 0xff;
  src.poll_log2 = 6;
  src.stats_frequency_ppm = 0.01;
  src.stats_skew_ppm = 0.1;
  src.stats_std_dev_s = 1e-5;
  chrony.sources = {src};
  s.chrony = chrony;
  NtpServerObservation up;
  up.server = "192.0.2.1:123";
  up.reachable = up.usable = true;
  up.stratum = 2;
  up.reference_id = 0xC0000202;
  NtpServerObservation kissed;
  kissed.server = "192.0.2.2:123";
  kissed.kiss_code = "RATE";
  s.ntp = NtpObservation{{up, kissed}};
  s.ntp_configured = 2;
  s.ntpd_up = true;
  s.ntpd = NtpdObservation{};
  s.ntpd->stratum = 3;
  s.ntpd->refid = "192.0.2.9";
  NtpdPeer peer;
  peer.association_id = 1;
  peer.address = "192.0.2.9";
  peer.condition = "sys.peer";
  peer.reach = 0xff;
  s.ntpd->peers.push_back(peer);
  s.timesyncd_up = true;
  s.timesyncd = TimesyncdObservation{};
  s.timesyncd->bus = true;
  s.timesyncd->synchronised = true;
  s.timesyncd->server_name = "ntp.example.org";
  s.timesyncd->leap = 0;
  s.timesyncd->stratum = 2;
  s.timesyncd->offset_s = 0.001;
  s.timesyncd->delay_s = 0.002;
  s.timesyncd->root_delay_s = 0.003;
  s.timesyncd->root_dispersion_s = 0.0005;
  s.timesyncd->jitter_s = 0.0001;
  // ptp: a slave ptp4l with TIME_STATUS_NP (every vmtime_host_ptp_* family).
  PtpObservation ptp;
  ptp.clock_identity = "021122.fffe.334455";
  ptp.grandmaster_identity = "0a0b0c.fffe.0d0e0f";
  ptp.parent_port_identity = "0a0b0c.fffe.0d0e0f-1";
  ptp.domain_number = 0;
  ptp.clock_class = 255;
  ptp.steps_removed = 1;
  ptp.offset_from_master_s = -1.5e-6;
  ptp.mean_path_delay_s = 3.25e-6;
  ptp.grandmaster_clock_class = 6;
  ptp.grandmaster_clock_accuracy = 0x21;
  ptp.current_utc_offset_s = 37;
  ptp.current_utc_offset_valid = ptp.ptp_timescale = ptp.time_traceable = true;
  ptp.time_source = 0x20;
  ptp.master_offset_s = -1.5e-6;
  ptp.gm_present = true;
  PtpPortObservation port;
  port.port_number = 1;
  port.port_identity = "021122.fffe.334455-1";
  port.state = PtpPortState::kSlave;
  ptp.ports = {port};
  s.ptp_enabled = s.ptp_up = true;
  s.ptp = ptp;
  scoring::HostReference ptp_ref;
  ptp_ref.state = scoring::SyncState::kSynchronised;
  ptp_ref.source = "ptp";
  s.ptp_host_reference = ptp_ref;
  s.libvirt_enabled = s.libvirt_connected = true;
  VmView vm;
  vm.name = "web-1";
  vm.uuid = "11111111-1111-1111-1111-111111111111";
  vm.state = DomainState::kRunning;
  vm.agent_up = vm.agent_attempted = true;
  vm.last_sample = Sample(100, 0.002);
  vm.rtt_s = 0.0008;
  vm.utc_offset_s = 0.0021;
  vm.steps_total = {1, 2};
  vm.remediations_total = std::make_shared<RemediationCounts>(RemediationCounts{1, 0, 0, 2, 0});
  GuestStatusObservation guest;
  guest.daemon = "chrony";
  guest.status.state = scoring::SyncState::kSynchronised;
  guest.status.stratum = 4;
  guest.status.leap = scoring::LeapStatus::kNormal;
  guest.error = "timeout: chronyc -c tracking: still running at the deadline";
  vm.guest = std::make_shared<const GuestStatusObservation>(guest);
  vm.score.score = 42;
  vm.score.measured.fill(true);  // every component series
  vm.score.drift = scoring::DriftEstimate{2.6e-5, 1e-6, 8};
  for (int r = 0; r < scoring::kReasonCount; ++r) {
    vm.score.reasons.insert(static_cast<scoring::Reason>(r));
  }
  vm.group = "mysql";
  vm.labels = {{"team", "db"}};
  s.vms = {vm};
  s.groups = {{"mysql", 2, 2, 45.0, "db-2", "web-1"}};
  return s;
}

// One row of a metric table in docs/metrics.md. A label in brackets is
// optional ("[group]"); "[label_*]" stands for any label with that prefix.
struct DocumentedMetric {
  std::string type;
  std::set<std::string> labels;
  std::set<std::string> optional;

  bool Allows(const std::set<std::string>& rendered) const {
    for (const auto& l : labels) {
      if (!rendered.contains(l)) return false;
    }
    for (const auto& l : rendered) {
      if (labels.contains(l) || optional.contains(l)) continue;
      const bool prefixed = std::any_of(optional.begin(), optional.end(), [&](const auto& o) {
        return o.ends_with('*') && l.starts_with(o.substr(0, o.size() - 1));
      });
      if (!prefixed) return false;
    }
    return true;
  }
};

std::vector<std::string> Cells(const std::string& row) {
  std::vector<std::string> cells;
  std::stringstream in(row);
  std::string cell;
  std::getline(in, cell, '|');  // before the first '|'
  while (std::getline(in, cell, '|')) {
    const auto b = cell.find_first_not_of(" `");
    const auto e = cell.find_last_not_of(" `");
    cells.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
  }
  return cells;
}

// The metric tables of docs/metrics.md: name -> type and labels. A table
// without a `labels` column documents unlabelled metrics.
std::map<std::string, DocumentedMetric> DocumentedMetrics() {
  std::ifstream in(std::string(VMTIME_SOURCE_DIR) + "/docs/metrics.md");
  std::map<std::string, DocumentedMetric> out;
  std::vector<std::string> header;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("| metric |")) header = Cells(line);
    if (!line.starts_with("| `vmtime_")) continue;
    const auto cells = Cells(line);
    DocumentedMetric m;
    for (size_t i = 1; i < cells.size() && i < header.size(); ++i) {
      if (header[i] == "type") m.type = cells[i];
      if (header[i] != "labels") continue;
      std::stringstream labels(cells[i]);
      for (std::string l; std::getline(labels, l, ',');) {
        l.erase(0, l.find_first_not_of(' '));
        if (l.size() > 2 && l.front() == '[' && l.back() == ']') {
          m.optional.insert(l.substr(1, l.size() - 2));
        } else if (!l.empty()) {
          m.labels.insert(l);
        }
      }
    }
    out[cells[0]] = m;
  }
  return out;
}

std::string Normalise(std::string text) {
  // The build revision changes with every commit.
  return std::regex_replace(text, std::regex("revision=\"[^\"]*\""), "revision=\"REV\"");
}

TEST(Exposition, GoldenFile) {
  const std::string got = Normalise(exposition::RenderText(*FixedSnapshot()));
  if (std::getenv("VMTIME_UPDATE_GOLDEN")) {
    std::ofstream(kGolden) << got;
    GTEST_SKIP() << "golden file regenerated: " << kGolden;
  }
  std::ifstream in(kGolden);
  ASSERT_TRUE(in) << "missing " << kGolden << " (run with VMTIME_UPDATE_GOLDEN=1)";
  std::stringstream want;
  want << in.rdbuf();
  EXPECT_EQ(got, want.str()) << "exposition changed; if intended, regenerate with "
                                "VMTIME_UPDATE_GOLDEN=1";
}

TEST(Exposition, RemediationCountsAllResultsOnceAVmHadAnAttempt) {
  const std::string text = exposition::RenderText(FullSnapshot());
  const std::string prefix =
      "vmtime_vm_remediations_total{domain=\"web-1\",uuid=\"11111111-1111-1111-1111-"
      "111111111111\",result=";
  EXPECT_NE(text.find(prefix + "\"ok\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find(prefix + "\"not_corrected\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find(prefix + "\"failed\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find(prefix + "\"dry_run\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find(prefix + "\"refused_backward\"} 0\n"), std::string::npos);
  // Never attempted (remediation off, the default): no series at all.
  const std::string fixed = exposition::RenderText(*FixedSnapshot());
  EXPECT_EQ(fixed.find("vmtime_vm_remediations_total"), std::string::npos);
}

TEST(Exposition, VmSeriesFollowTheContract) {
  const std::string text = exposition::RenderText(*FixedSnapshot());
  EXPECT_NE(text.find("vmtime_vm_info{domain=\"paused-1\",uuid=\"44444444-4444-4444-4444-"
                      "444444444444\",state=\"paused\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("vmtime_vm_clock_steps_total{domain=\"db-1\",uuid=\"22222222-2222-2222-2222-"
                      "222222222222\",direction=\"backward\"} 1"),
            std::string::npos);
  EXPECT_NE(
      text.find(
          "vmtime_vm_agent_up{domain=\"batch-1\",uuid=\"33333333-3333-3333-3333-333333333333\"} 0"),
      std::string::npos);
  EXPECT_NE(text.find("vmtime_host_timex_sync_status 1"), std::string::npos);
  EXPECT_NE(text.find("vmtime_collector_success{collector=\"timex\"} 1"), std::string::npos);
  EXPECT_NE(text.find("vmtime_exporter_build_info{version=\""), std::string::npos);
  // No offset series for a VM that never had a sample.
  EXPECT_EQ(text.find("vmtime_vm_clock_offset_seconds{domain=\"batch-1\""), std::string::npos);
}

// prometheus-cpp's own name checks over every family and label name the
// exposition can write; each name once per scrape, each label once per series.
TEST(Exposition, EveryNamePassesPrometheusCppChecks) {
  const auto families = exposition::RenderFamilies(FullSnapshot());
  ASSERT_GT(families.size(), 60u);
  std::set<std::string> seen;
  for (const auto& f : families) {
    EXPECT_TRUE(prometheus::CheckMetricName(f.name)) << f.name;
    EXPECT_TRUE(seen.insert(f.name).second) << "family rendered twice: " << f.name;
    EXPECT_FALSE(f.help.empty()) << f.name;
    EXPECT_FALSE(f.metric.empty()) << "family without samples rendered: " << f.name;
    if (f.type == prometheus::MetricType::Counter) {
      EXPECT_TRUE(f.name.ends_with("_total")) << f.name;
    }
    for (const auto& m : f.metric) {
      std::set<std::string> labels;
      for (const auto& l : m.label) {
        EXPECT_TRUE(prometheus::CheckLabelName(l.name)) << f.name << " label " << l.name;
        EXPECT_TRUE(labels.insert(l.name).second) << f.name << " repeats label " << l.name;
      }
    }
  }
  // The checks themselves reject what they should (the test can fail).
  EXPECT_FALSE(prometheus::CheckMetricName("vmtime-vm"));
  EXPECT_FALSE(prometheus::CheckLabelName("__reserved"));
}

// docs/metrics.md is the contract: every family the full snapshot renders is
// documented with its type and label names, and every documented metric is
// rendered.
TEST(Exposition, RenderedFamiliesMatchDocsMetrics) {
  const auto documented = DocumentedMetrics();
  ASSERT_GT(documented.size(), 60u) << "docs/metrics.md tables not found";
  std::set<std::string> rendered;
  for (const auto& f : exposition::RenderFamilies(FullSnapshot())) {
    rendered.insert(f.name);
    const auto it = documented.find(f.name);
    if (it == documented.end()) {
      ADD_FAILURE() << f.name << " is rendered but not in docs/metrics.md";
      continue;
    }
    const char* type = f.type == prometheus::MetricType::Counter ? "counter" : "gauge";
    EXPECT_EQ(it->second.type, type) << f.name;
    for (const auto& m : f.metric) {
      std::set<std::string> labels;
      for (const auto& l : m.label) labels.insert(l.name);
      EXPECT_TRUE(it->second.Allows(labels)) << f.name;
    }
  }
  for (const auto& [name, doc] : documented) {
    EXPECT_TRUE(rendered.contains(name)) << name << " is documented but never rendered";
  }
}

// The audit counters (docs/audit.md): one series per type seen, and every
// drop reason; nothing without a sink (no counters in the snapshot).
TEST(Exposition, AuditEventCounters) {
  const std::string text = exposition::RenderText(FullSnapshot());
  EXPECT_NE(text.find("# TYPE vmtime_events_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("vmtime_events_total{type=\"reason_raised\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("vmtime_events_dropped_total{reason=\"write_error\"} 4\n"),
            std::string::npos);
  EXPECT_NE(text.find("vmtime_events_dropped_total{reason=\"queue_full\"} 0\n"), std::string::npos);
  Snapshot bare = FullSnapshot();
  bare.events = {};
  EXPECT_EQ(exposition::RenderText(bare).find("vmtime_events_"), std::string::npos);
}

std::string VmLabels(const VmView& vm) {
  return "{domain=\"" + vm.name + "\",uuid=\"" + vm.uuid + "\"}";
}

// vmtime_vm_agent_up: 1 up, 0 down, absent (JSON null) before the first
// attempt finished.
TEST(Exposition, AgentUpAbsentUntilAttempted) {
  Snapshot s = FullSnapshot();
  VmView down = s.vms[0], fresh = s.vms[0];
  down.name = "down";
  down.agent_up = false;
  fresh.name = "fresh";
  fresh.agent_up = false;
  fresh.agent_attempted = false;
  s.vms = {down, fresh, s.vms[0]};
  const std::string text = exposition::RenderText(s);
  EXPECT_NE(text.find("vmtime_vm_agent_up" + VmLabels(down) + " 0\n"), std::string::npos);
  EXPECT_NE(text.find("vmtime_vm_agent_up" + VmLabels(s.vms[2]) + " 1\n"), std::string::npos);
  EXPECT_EQ(text.find("vmtime_vm_agent_up{domain=\"fresh\""), std::string::npos) << text;
  EXPECT_NE(text.find("vmtime_vm_health_score{domain=\"fresh\""), std::string::npos);
  const auto j = exposition::RenderJson(s);
  EXPECT_EQ(j["vms"][0]["agent_up"], false);
  EXPECT_TRUE(j["vms"][1]["agent_up"].is_null());
  EXPECT_EQ(j["vms"][2]["agent_up"], true);
  const std::string page = exposition::RenderStatusPage(s, "/metrics");
  EXPECT_NE(page.find("<td class=\"agent\" data-l=\"Agent\">not tried yet</td>"),
            std::string::npos);
}

// vmtime_vm_health_band is the Band's value; JSON "band" its name.
TEST(Exposition, HealthBandGaugeAndJson) {
  Snapshot s = FullSnapshot();
  const VmView base = s.vms[0];
  s.vms.clear();
  for (auto band : {scoring::Band::kGood, scoring::Band::kDegraded, scoring::Band::kBad}) {
    VmView vm = base;
    vm.name = std::string(scoring::BandName(band));
    vm.score.band = band;
    s.vms.push_back(vm);
  }
  const std::string text = exposition::RenderText(s);
  const auto j = exposition::RenderJson(s);
  const std::string page = exposition::RenderStatusPage(s, "/metrics");
  for (size_t i = 0; i < s.vms.size(); ++i) {
    const VmView& vm = s.vms[i];
    EXPECT_NE(text.find("vmtime_vm_health_band" + VmLabels(vm) + " " + std::to_string(i) + "\n"),
              std::string::npos)
        << vm.name << "\n"
        << text;
    EXPECT_EQ(j["vms"][i]["band"], vm.name.str());
    EXPECT_NE(page.find("<td class=\"" + vm.name + "\" data-l=\"Band\">" + vm.name + "</td>"),
              std::string::npos)
        << vm.name;
  }
  EXPECT_EQ(text.find("# TYPE vmtime_vm_health_band gauge"),
            text.find("# TYPE vmtime_vm_health_band "));
}

// vmtime_host_synchronised{source}: 1 only for kSynchronised; absent (JSON
// host.reference null) without a host reference.
TEST(Exposition, HostSynchronisedFollowsHostReference) {
  struct Case {
    scoring::SyncState state;
    std::string source;
    const char* want;
  };
  for (const Case& c : {Case{scoring::SyncState::kSynchronised, "chrony", " 1\n"},
                        Case{scoring::SyncState::kUnsynchronised, "kernel", " 0\n"},
                        Case{scoring::SyncState::kUnknown, "kernel", " 0\n"}}) {
    Snapshot s = FullSnapshot();
    s.host_reference->state = c.state;
    s.host_reference->source = c.source;
    const std::string text = exposition::RenderText(s);
    EXPECT_NE(text.find("vmtime_host_synchronised{source=\"" + c.source + "\"}" + c.want),
              std::string::npos)
        << text;
    const auto j = exposition::RenderJson(s);
    EXPECT_EQ(j["host"]["reference"]["source"], c.source);
    EXPECT_EQ(j["host"]["reference"]["synchronised"], c.state == scoring::SyncState::kSynchronised);
  }
  Snapshot none = FullSnapshot();
  none.host_reference.reset();
  EXPECT_EQ(exposition::RenderText(none).find("# TYPE vmtime_host_synchronised "),
            std::string::npos);
  EXPECT_TRUE(exposition::RenderJson(none)["host"]["reference"].is_null());
  EXPECT_NE(exposition::RenderStatusPage(none, "/metrics").find("<dt>Host clock</dt><dd>unknown"),
            std::string::npos);
}

// Every reason, by its ReasonName, on /metrics, in the JSON and on the page.
TEST(Exposition, EveryReasonRendersEverywhere) {
  const Snapshot s = FullSnapshot();
  ASSERT_EQ(s.vms[0].score.reasons.size(), static_cast<size_t>(scoring::kReasonCount));
  const std::string text = exposition::RenderText(s);
  const auto j = exposition::RenderJson(s);
  const std::string page = exposition::RenderStatusPage(s, "/metrics");
  for (int r = 0; r < scoring::kReasonCount; ++r) {
    const std::string name(scoring::ReasonName(static_cast<scoring::Reason>(r)));
    EXPECT_NE(text.find(",reason=\"" + name + "\"} 1\n"), std::string::npos) << name;
    EXPECT_EQ(j["vms"][0]["reasons"][r], name);
    EXPECT_NE(page.find("<a href=\"?reason=" + name + "\">" + name + "</a> "), std::string::npos)
        << name;
  }
}

TEST(Exposition, VanishedDomainsDisappear) {
  Config config;
  Store store(config);
  Observations obs;
  LibvirtObservation lv;
  lv.connected = true;
  DomainObservation a;
  a.name = "a";
  a.uuid = "u-a";
  a.state = DomainState::kRunning;
  lv.domains = {a};
  obs.libvirt = lv;
  store.Apply(obs);
  EXPECT_EQ(store.Build(0, 0)->vms.size(), 1u);
  obs.libvirt->domains.clear();
  store.Apply(obs);
  EXPECT_TRUE(store.Build(0, 0)->vms.empty());
  EXPECT_EQ(exposition::RenderText(*store.Build(0, 0)).find("domain=\"a\""), std::string::npos);
}

TEST(Exposition, JsonViewMatchesDocs) {
  auto j = exposition::RenderJson(*FixedSnapshot());
  ASSERT_EQ(j["vms"].size(), 5u);
  // Sorted by domain.
  EXPECT_EQ(j["vms"][0]["domain"], "batch-1");
  EXPECT_TRUE(j["vms"][0]["offset_seconds"].is_null());
  EXPECT_EQ(j["vms"][1]["domain"], "db-1");
  EXPECT_DOUBLE_EQ(j["vms"][1]["offset_seconds"].get<double>(), -480.0);
  EXPECT_EQ(j["vms"][1]["steps_total"]["backward"], 1);
  EXPECT_TRUE(j["vms"][1]["health_score"].is_number());
  EXPECT_TRUE(j["vms"][1]["components"].contains("offset"));
  EXPECT_TRUE(j["host"]["timex"]["synchronised"].get<bool>());
  EXPECT_TRUE(j["host"]["chrony"].is_null());
}

TEST(Exposition, StatusPageEscapesNames) {
  Config config;
  Store store(config);
  Observations obs;
  LibvirtObservation lv;
  DomainObservation evil;
  evil.name = "<script>alert(1)</script>";
  evil.uuid = "u\"x";
  lv.domains = {evil};
  obs.libvirt = lv;
  store.Apply(obs);
  const std::string page = exposition::RenderStatusPage(*store.Build(0, 0), "/metrics");
  EXPECT_EQ(page.find("<script>"), std::string::npos);
  EXPECT_NE(page.find("&lt;script&gt;"), std::string::npos);
}

// Readers render while the writer swaps snapshots: every render must see a
// whole snapshot (all three VMs of one generation), never a mix or a crash.
TEST(SnapshotHolder, SwapUnderConcurrentScrapes) {
  SnapshotHolder holder;
  std::atomic<bool> stop{false};
  std::atomic<int> renders{0};
  std::atomic<int> torn{0};
  auto make = [](int gen) {
    auto s = std::make_shared<Snapshot>();
    s->libvirt_enabled = true;
    for (int i = 0; i < 3; ++i) {
      VmView v;
      v.name = "vm" + std::to_string(i);
      v.uuid = "gen" + std::to_string(gen);
      s->vms.push_back(v);
    }
    return s;
  };
  holder.Set(make(0));
  std::vector<std::thread> readers;
  for (int r = 0; r < 4; ++r) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        auto snap = holder.Get();
        const std::string text = exposition::RenderText(*snap);
        const std::string gen = snap->vms[0].uuid.str();
        size_t count = 0;
        for (size_t p = text.find("uuid=\"" + gen + "\""); p != std::string::npos;
             p = text.find("uuid=\"" + gen + "\"", p + 1)) {
          ++count;
        }
        if (text.find("vmtime_vm_info") == std::string::npos || count < 3) ++torn;
        ++renders;
      }
    });
  }
  // At least 2000 swaps, and keep swapping until the readers have rendered
  // 200 times (a loaded machine may not schedule them at first); bounded.
  for (int gen = 1; gen <= 2000 || (renders.load() < 200 && gen <= 2'000'000); ++gen) {
    holder.Set(make(gen));
  }
  // Bounded: readers stop as soon as the writer is done.
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_GT(renders.load(), 0);
}

}  // namespace
}  // namespace vmtime
