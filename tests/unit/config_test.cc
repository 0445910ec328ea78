#include "exporter/config/config.h"

#include <gtest/gtest.h>

#include <fstream>

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
  EXPECT_TRUE(c->Collector("timex").enabled);
  EXPECT_FALSE(c->Collector("guest_status").enabled);
  EXPECT_DOUBLE_EQ(c->Collector("guest_status").interval_s, 60);
}

TEST(Config, EmptyDocumentMeansDefaults) {
  auto c = ParseConfig("", "empty.yml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->libvirt.uri, "qemu:///system");
  EXPECT_TRUE(c->Collector("libvirt").enabled);
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
  EXPECT_FALSE(c->Collector("ntp").enabled);
  EXPECT_DOUBLE_EQ(c->Collector("timex").interval_s, 60);
  EXPECT_DOUBLE_EQ(c->Collector("timex").timeout_s, 5);  // default kept
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
                    BadCase{"unknown_collector", "collectors:\n  ptp: {enabled: true}\n",
                            "bad.yml:2:3: collectors.ptp: unknown key"},
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
                            "bad.yml:2:3: scoring.offset_warn: unknown key"}),
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

}  // namespace
}  // namespace vmtime
