#include "exporter/cli/flags.h"

#include <gtest/gtest.h>

#include <sstream>

namespace vmtime {
namespace {

FlagsOutcome Parse(std::vector<const char*> args, std::string* out = nullptr,
                   std::string* err = nullptr) {
  args.insert(args.begin(), "vmtime_exporter");
  std::ostringstream o, e;
  auto r = ParseFlags(static_cast<int>(args.size()), args.data(), o, e);
  if (out) *out = o.str();
  if (err) *err = e.str();
  return r;
}

TEST(Flags, DefaultsLeaveConfigAlone) {
  auto r = Parse({});
  ASSERT_FALSE(r.exit_code);
  Config c;
  ApplyFlags(r.flags, c);
  EXPECT_EQ(c.web.listen_address, ":9958");
  EXPECT_EQ(c.libvirt.uri, "qemu:///system");
  EXPECT_EQ(r.flags.log_level, "info");
}

TEST(Flags, LifecycleIsOffUnlessAsked) {
  EXPECT_FALSE(Parse({}).flags.enable_lifecycle);
  auto r = Parse({"--web.enable-lifecycle"});
  ASSERT_FALSE(r.exit_code);
  EXPECT_TRUE(r.flags.enable_lifecycle);
}

TEST(Flags, PrometheusStyleFlagsOverrideConfig) {
  auto r = Parse({"--web.listen-address", "127.0.0.1:0", "--web.telemetry-path=/m", "--libvirt.uri",
                  "test:///default", "--chrony.address", "127.0.0.1:323", "--ntp.server",
                  "127.0.0.1:1123", "--ntp.server", "127.0.0.2", "--log.level", "debug",
                  "--log.format", "json", "--no-collector.timex"});
  ASSERT_FALSE(r.exit_code);
  Config c;
  c.collectors[CollectorId::kTimex].enabled = true;
  ApplyFlags(r.flags, c);
  EXPECT_EQ(c.web.listen_address, "127.0.0.1:0");
  EXPECT_EQ(c.web.telemetry_path, "/m");
  EXPECT_EQ(c.libvirt.uri, "test:///default");
  EXPECT_EQ(c.chrony.address, "127.0.0.1:323");
  EXPECT_EQ(c.ntp.servers, (std::vector<std::string>{"127.0.0.1:1123", "127.0.0.2"}));
  EXPECT_FALSE(c.collectors[CollectorId::kTimex].enabled);
  EXPECT_EQ(r.flags.log_format, "json");
}

TEST(Flags, CollectorFlagsComeFromTheTable) {
  std::string out;
  auto r = Parse({"--help"}, &out);
  ASSERT_TRUE(r.exit_code);
  EXPECT_EQ(*r.exit_code, 0);
  for (const auto& c : CollectorTable()) {
    const std::string name(c.name);
    EXPECT_NE(out.find("--collector." + name), std::string::npos) << name;
    EXPECT_NE(out.find("--no-collector." + name), std::string::npos) << name;
    // The help line carries the table's default and one-line help.
    const std::string help = std::string("(default ") + (c.defaults.enabled ? "on" : "off") +
                             "): " + std::string(c.help);
    EXPECT_NE(out.find(help), std::string::npos) << name << ": " << help;
  }
  EXPECT_NE(out.find("--config.file"), std::string::npos);
  EXPECT_NE(out.find("--web.listen-address"), std::string::npos);
}

TEST(Flags, CollectorFlagsOverrideTheTableDefaults) {
  auto r = Parse({"--collector.guest_status", "--no-collector.ntp"});
  ASSERT_FALSE(r.exit_code);
  Config c;
  EXPECT_FALSE(c.Collector(CollectorId::kGuestStatus).enabled);  // the table's default
  ApplyFlags(r.flags, c);
  EXPECT_TRUE(c.Collector(CollectorId::kGuestStatus).enabled);
  EXPECT_FALSE(c.Collector(CollectorId::kNtp).enabled);
  EXPECT_TRUE(c.Collector(CollectorId::kTimex).enabled);  // no flag: untouched
}

TEST(Flags, VersionExitsZero) {
  std::string out;
  auto r = Parse({"--version"}, &out);
  ASSERT_TRUE(r.exit_code);
  EXPECT_EQ(*r.exit_code, 0);
  EXPECT_NE(out.find("vmtime_exporter, version "), std::string::npos);
}

TEST(Flags, BadFlagsExitTwoWithReason) {
  std::string err;
  auto r = Parse({"--no-such-flag"}, nullptr, &err);
  ASSERT_TRUE(r.exit_code);
  EXPECT_EQ(*r.exit_code, 2);
  EXPECT_NE(err.find("no-such-flag"), std::string::npos) << err;

  r = Parse({"--log.level", "loud"}, nullptr, &err);
  ASSERT_TRUE(r.exit_code);
  EXPECT_EQ(*r.exit_code, 2);
  EXPECT_NE(err.find("loud"), std::string::npos) << err;

  r = Parse({"--collector.timex", "--no-collector.timex"}, nullptr, &err);
  ASSERT_TRUE(r.exit_code);
  EXPECT_EQ(*r.exit_code, 2);
  EXPECT_NE(err.find("contradict"), std::string::npos) << err;
}

}  // namespace
}  // namespace vmtime
