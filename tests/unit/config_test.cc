#include "exporter/config/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "exporter/config/duration.h"

namespace vmtime {
namespace {

TEST(Duration, ParsesUnitsAndBareSeconds) {
  EXPECT_DOUBLE_EQ(*ParseDurationSeconds("15s"), 15);
  EXPECT_DOUBLE_EQ(*ParseDurationSeconds("250ms"), 0.25);
  EXPECT_DOUBLE_EQ(*ParseDurationSeconds("2m"), 120);
  EXPECT_DOUBLE_EQ(*ParseDurationSeconds("1h"), 3600);
  EXPECT_DOUBLE_EQ(*ParseDurationSeconds("1m30s"), 90);
  EXPECT_DOUBLE_EQ(*ParseDurationSeconds("0.5"), 0.5);
  EXPECT_DOUBLE_EQ(*ParseDurationSeconds("10us"), 10e-6);
}

TEST(Duration, RejectsGarbage) {
  for (const char* bad : {"", "s", "15x", "-1s", "abc", "1.5.5s", "-3"}) {
    auto r = ParseDurationSeconds(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_NE(ParseDurationSeconds("15x").error().message.find("unknown unit 'x'"),
            std::string::npos);
}

TEST(Config, BuiltInDefaultParsesAndMatchesStructDefaults) {
  auto c = ParseConfig(DefaultConfigYaml(), "<built-in>");
  ASSERT_TRUE(c.ok()) << c.error().message;
  Config d;
  EXPECT_EQ(c->web.listen_address, ":9958");
  EXPECT_EQ(c->web.telemetry_path, d.web.telemetry_path);
  EXPECT_EQ(c->web.allowed_hosts, d.web.allowed_hosts);
  EXPECT_EQ(c->libvirt.uri, d.libvirt.uri);
  EXPECT_EQ(c->libvirt.samples, d.libvirt.samples);
  EXPECT_DOUBLE_EQ(c->libvirt.agent_timeout_s, d.libvirt.agent_timeout_s);
  EXPECT_EQ(c->libvirt.agent_max_attempts, 32);
  EXPECT_DOUBLE_EQ(c->libvirt.agent_retry_interval_s, 5);
  EXPECT_EQ(c->chrony.address, d.chrony.address);
  EXPECT_DOUBLE_EQ(c->scoring.offset_warning_s, scoring::Params{}.offset_warning_s);
  EXPECT_DOUBLE_EQ(c->scoring.offset_critical_s, 300);
  EXPECT_DOUBLE_EQ(c->scoring.offset_zero_s, 900);
  EXPECT_DOUBLE_EQ(c->scoring.offset_full_s, 0.010);
  EXPECT_DOUBLE_EQ(c->scoring.drift_full_ratio, 50e-6);
  EXPECT_EQ(c->scoring.stratum_full, 4);
  EXPECT_TRUE(c->Collector(CollectorId::kTimex).enabled);
  EXPECT_FALSE(c->Collector(CollectorId::kGuestStatus).enabled);
  EXPECT_DOUBLE_EQ(c->Collector(CollectorId::kGuestStatus).interval_s, 60);
}

TEST(Config, BuiltInDefaultYamlEqualsTheStructDefaults) {
  // Every section, not only the fields checked above: the YAML text and the
  // struct initialisers (and the collector table) say the same thing.
  auto c = ParseConfig(DefaultConfigYaml(), "<built-in>");
  ASSERT_TRUE(c.ok()) << c.error().message;
  Config d;
  d.source = "<built-in>";
  EXPECT_TRUE(*c == d);
  EXPECT_EQ(c->collectors, DefaultCollectorConfigs());
}

TEST(Config, MetricsComponentScores) {
  EXPECT_TRUE(Config{}.metrics.component_scores);
  auto off = ParseConfig("metrics:\n  component_scores: false\n", "m.yml");
  ASSERT_TRUE(off.ok()) << off.error().message;
  EXPECT_FALSE(off->metrics.component_scores);
}

TEST(Config, BuiltInDefaultListsEveryCollectorOfTheTable) {
  const std::string yaml = DefaultConfigYaml();
  for (const auto& def : CollectorTable()) {
    const CollectorConfig& d = def.defaults;
    const std::string line = "  " + std::string(def.name) +
                             ": {enabled: " + (d.enabled ? "true" : "false") +
                             ", interval: " + FormatDuration(d.interval_s) +
                             ", timeout: " + FormatDuration(d.timeout_s) +
                             ", max_retries: " + std::to_string(d.max_retries) +
                             ", retry_backoff: " + FormatDuration(d.retry_backoff_s) + "}\n";
    EXPECT_NE(yaml.find(line), std::string::npos) << line;
  }
}

TEST(CollectorTable, NamesAreUniqueAndRoundTrip) {
  std::set<std::string_view> names;
  for (const auto& def : CollectorTable()) {
    EXPECT_TRUE(names.insert(def.name).second) << def.name;
    EXPECT_EQ(CollectorIdFromName(def.name), def.id);
    EXPECT_EQ(CollectorName(def.id), def.name);
    EXPECT_EQ(&CollectorDefinitionOf(def.id), &def);
    EXPECT_FALSE(def.help.empty()) << def.name;
  }
  EXPECT_EQ(CollectorIdFromName("gpsd"), std::nullopt);
}

TEST(CollectorTable, DocumentedInConfigurationMd) {
  std::ifstream f(std::string(VMTIME_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(f) << "docs/configuration.md";
  std::stringstream doc;
  doc << f.rdbuf();
  for (const auto& def : CollectorTable()) {
    const CollectorConfig& d = def.defaults;
    const std::string row =
        "| `" + std::string(def.name) + "` | `" + (d.enabled ? "true" : "false") + "` | `" +
        FormatDuration(d.interval_s) + "` | `" + FormatDuration(d.timeout_s) + "` | `" +
        std::to_string(d.max_retries) + "` | `" + FormatDuration(d.retry_backoff_s) + "` |";
    EXPECT_NE(doc.str().find(row), std::string::npos) << "missing row: " << row;
  }
}

TEST(Config, EmptyDocumentMeansDefaults) {
  auto c = ParseConfig("", "empty.yml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->libvirt.uri, "qemu:///system");
  EXPECT_TRUE(c->Collector(CollectorId::kLibvirt).enabled);
}

TEST(Config, OverridesApply) {
  auto c = ParseConfig(R"(
libvirt:
  uri: test:///default
  samples: 5
collectors:
  ntp: {enabled: false}
  timex: {interval: 1m}
ntp:
  servers: [127.0.0.1:12345, pool.example]
scoring:
  offset_warning_s: 10s
  weight_offset: 0.5
)",
                       "c.yml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->libvirt.uri, "test:///default");
  EXPECT_EQ(c->libvirt.samples, 5);
  EXPECT_FALSE(c->Collector(CollectorId::kNtp).enabled);
  EXPECT_DOUBLE_EQ(c->Collector(CollectorId::kTimex).interval_s, 60);
  EXPECT_DOUBLE_EQ(c->Collector(CollectorId::kTimex).timeout_s, 5);  // default kept
  ASSERT_EQ(c->ntp.servers.size(), 2u);
  EXPECT_DOUBLE_EQ(c->scoring.offset_warning_s, 10);
  EXPECT_DOUBLE_EQ(c->scoring.weight_offset, 0.5);
}

struct BadCase {
  const char* name;
  const char* yaml;
  const char* expect;  // substring of the message, including line:column
};

class ConfigErrors : public testing::TestWithParam<BadCase> {};

TEST_P(ConfigErrors, NameFileLineColumn) {
  auto c = ParseConfig(GetParam().yaml, "bad.yml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find(GetParam().expect), std::string::npos)
      << "got: " << c.error().message;
  EXPECT_EQ(c.error().message.rfind("bad.yml:", 0), 0u) << c.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    All, ConfigErrors,
    testing::Values(BadCase{"unknown_top", "web:\n  listen_address: ':1'\nbogus: 1\n",
                            "bad.yml:3:1: bogus: unknown key"},
                    BadCase{"unknown_nested", "libvirt:\n  uri: x\n  sampels: 3\n",
                            "bad.yml:3:3: libvirt.sampels: unknown key"},
                    BadCase{"wrong_type_int", "libvirt:\n  samples: many\n",
                            "bad.yml:2:12: libvirt.samples: expected an integer, got 'many'"},
                    BadCase{"out_of_range", "libvirt:\n  samples: 0\n",
                            "bad.yml:2:12: libvirt.samples: value 0"},
                    BadCase{"bad_duration", "collectors:\n  timex: {interval: 15parsecs}\n",
                            "bad.yml:2:21: collectors.timex.interval: invalid duration"},
                    BadCase{"bad_bool", "collectors:\n  timex:\n    enabled: maybe\n",
                            "bad.yml:3:14: collectors.timex.enabled: expected true or false"},
                    BadCase{"unknown_collector", "collectors:\n  gpsd: {enabled: true}\n",
                            "bad.yml:2:3: collectors.gpsd: unknown key"},
                    BadCase{"list_expected", "ntp:\n  servers: 127.0.0.1\n",
                            "bad.yml:2:12: ntp.servers: expected a list"},
                    BadCase{"mapping_expected", "libvirt: [1, 2]\n",
                            "bad.yml:1:10: libvirt: expected a mapping"},
                    BadCase{
                        "guest_command", "guest_status:\n  commands: [chronyc_tracking, rm_rf]\n",
                        "bad.yml:2:32: guest_status.commands[1]: unknown guest command 'rm_rf'"},
                    BadCase{"syntax", "web:\n  listen_address: [\n", "bad.yml:3:1: invalid YAML"},
                    BadCase{"scoring_number", "scoring:\n  weight_offset: heavy\n",
                            "bad.yml:2:18: scoring.weight_offset: expected a number"},
                    BadCase{"scoring_unknown", "scoring:\n  offset_warn: 3\n",
                            "bad.yml:2:3: scoring.offset_warn: unknown key"},
                    BadCase{"metrics_bool", "metrics:\n  component_scores: some\n",
                            "bad.yml:2:21: metrics.component_scores: expected true or false"},
                    BadCase{"metrics_unknown", "metrics:\n  component_score: false\n",
                            "bad.yml:2:3: metrics.component_score: unknown key"}),
    [](const testing::TestParamInfo<BadCase>& i) { return std::string(i.param.name); });

TEST(Config, LoadFileMissingNamesPath) {
  auto c = LoadConfigFile("/nonexistent/vmtime.yml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("/nonexistent/vmtime.yml: cannot open"), std::string::npos);
}

TEST(Config, LoadFileErrorsUseFileName) {
  const std::string path = testing::TempDir() + "/vmtime_config_test.yml";
  {
    std::ofstream f(path);
    f << "web:\n  telemetry_path: /m\n  nope: 1\n";
  }
  auto c = LoadConfigFile(path);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find(path + ":3:3: web.nope: unknown key"), std::string::npos)
      << c.error().message;
}

// ---- equality: every field of every config struct takes part ----

// Converts to any member type; used only in unevaluated brace-initialisation.
struct AnyField {
  template <typename T>
  operator T() const;  // NOLINT(google-explicit-constructor)
};

// The number of fields of aggregate T: the longest brace list it accepts.
template <typename T, typename... Fields>
constexpr size_t FieldCount() {
  if constexpr (requires { T{Fields{}..., AnyField{}}; }) {
    return FieldCount<T, Fields..., AnyField>();
  } else {
    return sizeof...(Fields);
  }
}

// One mutation per field of T, in any order: each must make a copy compare
// unequal. Adding a field to T without adding its mutation here does not
// compile.
template <typename T, typename... Mutation>
void ExpectEveryFieldCompared(const T& base, Mutation... mutate) {
  static_assert(sizeof...(Mutation) == FieldCount<T>(),
                "a field was added: give it a mutation in ExpectEveryFieldCompared");
  int index = 0;
  auto check = [&](auto m) {
    T copy = base;
    EXPECT_TRUE(copy == base);
    m(copy);
    EXPECT_FALSE(copy == base) << "mutation " << index << " of " << sizeof...(Mutation);
    ++index;
  };
  (check(mutate), ...);
}

TEST(ConfigEquality, CollectorConfig) {
  ExpectEveryFieldCompared(
      CollectorConfig{}, [](CollectorConfig& c) { c.enabled = !c.enabled; },
      [](CollectorConfig& c) { c.interval_s += 1; }, [](CollectorConfig& c) { c.timeout_s += 1; },
      [](CollectorConfig& c) { c.max_retries += 1; },
      [](CollectorConfig& c) { c.retry_backoff_s += 1; });
}

TEST(ConfigEquality, WebConfig) {
  ExpectEveryFieldCompared(
      WebConfig{}, [](WebConfig& c) { c.listen_address += "0"; },
      [](WebConfig& c) { c.telemetry_path += "x"; }, [](WebConfig& c) { c.config_file += "x"; },
      [](WebConfig& c) { c.allowed_hosts.push_back("localhost"); });
}

TEST(ConfigEquality, LibvirtConfig) {
  using L = LibvirtConfig;
  ExpectEveryFieldCompared(
      L{}, [](L& c) { c.uri += "x"; }, [](L& c) { c.allow_remote = !c.allow_remote; },
      [](L& c) { c.samples += 1; }, [](L& c) { c.agent_timeout_s += 1; },
      [](L& c) { c.set_agent_timeout = !c.set_agent_timeout; },
      [](L& c) { c.call_deadline_s += 1; }, [](L& c) { c.concurrency += 1; },
      [](L& c) { c.max_stuck_calls += 1; }, [](L& c) { c.agent_retry_interval_s += 1; },
      [](L& c) { c.agent_max_attempts += 1; }, [](L& c) { c.agent_backoff_max_s += 1; },
      [](L& c) { c.reconnect_backoff_max_s += 1; }, [](L& c) { c.keepalive_interval_s += 1; },
      [](L& c) { c.keepalive_count += 1; }, [](L& c) { c.metadata = !c.metadata; },
      [](L& c) { c.nova_metadata = !c.nova_metadata; });
}

TEST(ConfigEquality, ChronyConfig) {
  ExpectEveryFieldCompared(
      ChronyConfig{}, [](ChronyConfig& c) { c.address += "x"; },
      [](ChronyConfig& c) { c.timeout_s += 1; }, [](ChronyConfig& c) { c.sources = !c.sources; });
}

TEST(ConfigEquality, NtpConfig) {
  ExpectEveryFieldCompared(
      NtpConfig{}, [](NtpConfig& c) { c.servers.push_back("x"); },
      [](NtpConfig& c) { c.timeout_s += 1; }, [](NtpConfig& c) { c.max_stratum += 1; });
}

TEST(ConfigEquality, NtpdConfig) {
  ExpectEveryFieldCompared(
      NtpdConfig{}, [](NtpdConfig& c) { c.address += "x"; },
      [](NtpdConfig& c) { c.timeout_s += 1; }, [](NtpdConfig& c) { c.peers = !c.peers; });
}

TEST(ConfigEquality, TimesyncdConfig) {
  ExpectEveryFieldCompared(
      TimesyncdConfig{}, [](TimesyncdConfig& c) { c.bus_address += "x"; },
      [](TimesyncdConfig& c) { c.dbus = !c.dbus; }, [](TimesyncdConfig& c) { c.flag_file += "x"; },
      [](TimesyncdConfig& c) { c.timeout_s += 1; });
}

TEST(ConfigEquality, HostConfig) {
  ExpectEveryFieldCompared(HostConfig{}, [](HostConfig& c) { c.reference_order.push_back("x"); });
}

TEST(Config, HostReferenceOrderIsCheckedAndNamed) {
  auto ok = ParseConfig("host:\n  reference_order: [kernel, ntpd]\n", "t.yml");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->host.reference_order, (std::vector<std::string>{"kernel", "ntpd"}));
  auto unknown = ParseConfig("host:\n  reference_order: [chrony, gps]\n", "t.yml");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("t.yml:2:"), std::string::npos) << unknown.error().message;
  EXPECT_NE(unknown.error().message.find("unknown host reference source 'gps'"), std::string::npos);
  auto twice = ParseConfig("host:\n  reference_order: [ntpd, ntpd]\n", "t.yml");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().message.find("listed twice"), std::string::npos);
  auto empty = ParseConfig("host:\n  reference_order: []\n", "t.yml");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message.find("at least one"), std::string::npos);
  auto ntpd =
      ParseConfig("ntpd:\n  address: \"[::1]:123\"\n  timeout: 250ms\n  peers: false\n", "t.yml");
  ASSERT_TRUE(ntpd.ok()) << ntpd.error().message;
  EXPECT_EQ(ntpd->ntpd.address, "[::1]:123");
  EXPECT_DOUBLE_EQ(ntpd->ntpd.timeout_s, 0.25);
  EXPECT_FALSE(ntpd->ntpd.peers);
}

TEST(ConfigEquality, PtpConfig) {
  ExpectEveryFieldCompared(
      PtpConfig{}, [](PtpConfig& c) { c.socket += "x"; }, [](PtpConfig& c) { c.client_dir += "x"; },
      [](PtpConfig& c) { c.domain_number += 1; }, [](PtpConfig& c) { c.timeout_s += 1; });
}

// ptp: keys, defaults, and bad values named with file:line:column.
TEST(Config, PtpSection) {
  auto c = ParseConfig(
      "ptp:\n  socket: /run/ptp/ptp4l\n  client_dir: /run/vmtime\n"
      "  domain_number: 24\n  timeout: 250ms\n",
      "t.yml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->ptp.socket, "/run/ptp/ptp4l");
  EXPECT_EQ(c->ptp.client_dir, "/run/vmtime");
  EXPECT_EQ(c->ptp.domain_number, 24);
  EXPECT_DOUBLE_EQ(c->ptp.timeout_s, 0.25);
  EXPECT_FALSE(c->Collector(CollectorId::kPtp).enabled);  // off by default
  auto bad = ParseConfig("ptp:\n  domain_number: 256\n", "t.yml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("t.yml:2:"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("ptp.domain_number"), std::string::npos)
      << bad.error().message;
}

TEST(ConfigEquality, GuestStatusConfig) {
  using G = GuestStatusConfig;
  ExpectEveryFieldCompared(
      G{}, [](G& c) { c.commands.pop_back(); }, [](G& c) { c.exec_timeout_s += 1; },
      [](G& c) { c.max_output_bytes += 1; });
}

TEST(ConfigEquality, MetricsConfig) {
  ExpectEveryFieldCompared(MetricsConfig{},
                           [](MetricsConfig& c) { c.component_scores = !c.component_scores; });
}

TEST(ConfigEquality, RemediationConfig) {
  using R = RemediationConfig;
  ExpectEveryFieldCompared(
      R{}, [](R& c) { c.enabled = !c.enabled; }, [](R& c) { c.dry_run = !c.dry_run; },
      [](R& c) { c.threshold_s += 1; }, [](R& c) { c.triggers.pop_back(); },
      [](R& c) { c.guest_daemon_grace_s += 1; }, [](R& c) { c.min_interval_s += 1; },
      [](R& c) { c.max_backward_step_s += 1; },
      [](R& c) { c.allow_large_backward = !c.allow_large_backward; },
      [](R& c) { c.include.push_back("a"); }, [](R& c) { c.exclude.push_back("a"); },
      [](R& c) { c.include_metadata["k"] = "v"; }, [](R& c) { c.exclude_metadata["k"] = "v"; },
      [](R& c) { c.call_deadline_s += 1; }, [](R& c) { c.verify_tolerance_s += 1; },
      [](R& c) { c.samples += 1; }, [](R& c) { c.workers += 1; });
}

TEST(ConfigRemediation, DefaultsOffAndKeysParse) {
  auto d = ParseConfig(DefaultConfigYaml(), "<built-in>");
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->remediation, RemediationConfig{});
  EXPECT_FALSE(d->remediation.enabled);
  auto c = ParseConfig(
      "remediation:\n  enabled: true\n  dry_run: true\n  threshold: 250ms\n"
      "  triggers: [step]\n  exclude: [\"db-*\"]\n  include_metadata: {tier: prod}\n"
      "  exclude_metadata: {remediate: never}\n  max_backward_step: 2s\n",
      "t.yml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->remediation.enabled);
  EXPECT_TRUE(c->remediation.dry_run);
  EXPECT_DOUBLE_EQ(c->remediation.threshold_s, 0.25);
  EXPECT_EQ(c->remediation.triggers, std::vector<std::string>{"step"});
  EXPECT_EQ(c->remediation.exclude, std::vector<std::string>{"db-*"});
  EXPECT_EQ(c->remediation.include_metadata.at("tier"), "prod");
  EXPECT_EQ(c->remediation.exclude_metadata.at("remediate"), "never");
  EXPECT_DOUBLE_EQ(c->remediation.max_backward_step_s, 2);
}

TEST(ConfigRemediation, BadValuesNameTheKey) {
  auto bad = ParseConfig("remediation:\n  triggers: [resume]\n", "t.yml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("t.yml:2:14: remediation.triggers[0]: unknown trigger"),
            std::string::npos)
      << bad.error().message;
  bad = ParseConfig("remediation:\n  include_metadata: [a]\n", "t.yml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("remediation.include_metadata: expected a mapping"),
            std::string::npos)
      << bad.error().message;
  bad = ParseConfig("remediation:\n  include_metadata: {k: [1]}\n", "t.yml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("remediation.include_metadata.k: expected a scalar"),
            std::string::npos)
      << bad.error().message;
  bad = ParseConfig("remediation:\n  workers: 0\n", "t.yml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("remediation.workers"), std::string::npos);
}

TEST(ConfigEquality, GroupsConfig) {
  ExpectEveryFieldCompared(GroupsConfig{}, [](GroupsConfig& c) { c.rules.push_back({"a*", "a"}); });
  ExpectEveryFieldCompared(
      GroupRule{}, [](GroupRule& r) { r.match += "x"; }, [](GroupRule& r) { r.group += "x"; });
}

TEST(ConfigEquality, AuditConfig) {
  using A = AuditConfig;
  ExpectEveryFieldCompared(
      A{}, [](A& c) { c.file += "x"; }, [](A& c) { c.max_size_bytes += 1; },
      [](A& c) { c.sync_interval_s += 1; }, [](A& c) { c.queue_size += 1; },
      [](A& c) { c.ring_size += 1; });
}

TEST(Config, AuditSection) {
  auto c = ParseConfig(
      "audit:\n  file: /var/lib/x/audit.jsonl\n  max_size_bytes: 1000\n  sync_interval: 0s\n"
      "  queue_size: 5\n  ring_size: 7\n",
      "t.yml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->audit.file, "/var/lib/x/audit.jsonl");
  EXPECT_EQ(c->audit.max_size_bytes, 1000u);
  EXPECT_EQ(c->audit.sync_interval_s, 0);
  EXPECT_EQ(c->audit.queue_size, 5u);
  EXPECT_EQ(c->audit.ring_size, 7u);
  auto def = ParseConfig(DefaultConfigYaml(), "<built-in>");
  ASSERT_TRUE(def);
  EXPECT_EQ(def->audit, AuditConfig{});  // the built-in YAML says what the struct says
  auto bad = ParseConfig("audit:\n  queue_size: 0\n", "t.yml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("t.yml:2:"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("audit.queue_size"), std::string::npos) << bad.error().message;
  auto unknown = ParseConfig("audit:\n  path: x\n", "t.yml");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown key"), std::string::npos);
}

TEST(ConfigEquality, Config) {
  ExpectEveryFieldCompared(
      Config{}, [](Config& c) { c.source += "x"; }, [](Config& c) { c.web.telemetry_path += "x"; },
      [](Config& c) { c.libvirt.samples += 1; }, [](Config& c) { c.chrony.sources = false; },
      [](Config& c) { c.ntp.timeout_s += 1; }, [](Config& c) { c.ntpd.peers = false; },
      [](Config& c) { c.timesyncd.dbus = false; },
      [](Config& c) { c.host.reference_order.pop_back(); },
      [](Config& c) { c.ptp.domain_number += 1; },
      [](Config& c) { c.guest_status.exec_timeout_s += 1; },
      [](Config& c) { c.metrics.component_scores = false; },
      [](Config& c) { c.remediation.enabled = true; },
      [](Config& c) {
        c.groups.rules.push_back({"a*", "a"});
      },
      [](Config& c) { c.audit.ring_size += 1; },
      [](Config& c) { c.collectors[CollectorId::kNtp].interval_s += 1; },
      [](Config& c) { c.history_samples += 1; }, [](Config& c) { c.scoring.weight_offset += 1; });
}

TEST(ConfigEquality, ScoringParamsThroughTheYamlKeyTable) {
  // Every Params field has a `scoring:` key, and == compares each of them.
  ASSERT_EQ(ScoringFields().size(), FieldCount<scoring::Params>());
  std::set<std::string> names;
  const scoring::Params base;
  for (const auto& f : ScoringFields()) {
    EXPECT_TRUE(names.insert(f.name).second) << "duplicate key " << f.name;
    ASSERT_NE(f.dbl == nullptr, f.integer == nullptr) << f.name;
    scoring::Params p = base;
    if (f.dbl != nullptr) p.*f.dbl += 1;
    if (f.integer != nullptr) p.*f.integer += 1;
    EXPECT_FALSE(p == base) << f.name;
    // The field moved is the one the key names: no other row sees a change.
    for (const auto& g : ScoringFields()) {
      if (&g == &f) continue;
      const bool same =
          g.dbl != nullptr ? p.*g.dbl == base.*g.dbl : p.*g.integer == base.*g.integer;
      EXPECT_TRUE(same) << f.name << " also moved " << g.name;
    }
  }
}

// ---- reload: a collector is rebuilt exactly when a section it reads changes ----

TEST(CollectorSettingsEqual, FollowsTheSectionsOfTheTable) {
  struct Change {
    std::string_view section;
    void (*apply)(Config&);
  };
  const Change changes[] = {
      {"web", [](Config& c) { c.web.telemetry_path = "/other"; }},
      {"libvirt", [](Config& c) { c.libvirt.uri = "test:///default"; }},
      {"chrony", [](Config& c) { c.chrony.timeout_s = 3; }},
      {"ntp", [](Config& c) { c.ntp.servers = {"127.0.0.1:123"}; }},
      {"ntpd", [](Config& c) { c.ntpd.address = "127.0.0.1:1123"; }},
      {"timesyncd", [](Config& c) { c.timesyncd.dbus = false; }},
      {"host", [](Config& c) { c.host.reference_order = {"kernel"}; }},
      {"guest_status", [](Config& c) { c.guest_status.commands = {"ntpq_rv"}; }},
      {"history", [](Config& c) { c.history_samples = 8; }},
      {"metrics", [](Config& c) { c.metrics.component_scores = false; }},
      {"groups",
       [](Config& c) {
         c.groups.rules = {{"db-*", "db"}};
       }},
      {"scoring", [](Config& c) { c.scoring.offset_warning_s = 1; }},
      {"collectors", [](Config& c) { c.collectors[CollectorId::kNtp].interval_s = 1; }},
  };
  const Config base;
  for (const auto& def : CollectorTable()) {
    EXPECT_TRUE(CollectorSettingsEqual(def.id, base, base)) << def.name;
    for (const auto& change : changes) {
      Config changed = base;
      change.apply(changed);
      // `sections` is a comma-separated list: "ntp" must not match "ntpd".
      bool reads = false;
      std::string_view rest = def.sections;
      while (!rest.empty()) {
        const size_t comma = rest.find(',');
        std::string_view name = rest.substr(0, comma);
        while (name.starts_with(' ')) name.remove_prefix(1);
        reads = reads || name == change.section;
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
      EXPECT_EQ(CollectorSettingsEqual(def.id, base, changed), !reads)
          << def.name << " after a change of " << change.section;
    }
  }
}

}  // namespace
}  // namespace vmtime
