// Parsers of guest time daemon outputs: real captures (chronyc in the lab
// guest), outputs written from the tools' documented formats, and
// CRLF / truncation / garbage / locale variants of them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "exporter/collectors/guest_status/parse_text.h"
#include "exporter/collectors/guest_status/parsers.h"
#include "exporter/model/guest_commands.h"

namespace vmtime::guest_status {
namespace {

using scoring::LeapStatus;
using scoring::SyncState;

const std::filesystem::path kFixtures =
    std::filesystem::path(VMTIME_SOURCE_DIR) / "tests/fixtures/guest_status";

std::string Fixture(const std::string& name) {
  std::ifstream f(kFixtures / name, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing fixture " << (kFixtures / name);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string ToCrlf(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

// ---- command table ----

TEST(GuestCommandsTest, KnownIdsOnly) {
  EXPECT_TRUE(IsKnownGuestCommand("chronyc_tracking"));
  EXPECT_TRUE(IsKnownGuestCommand("ntpq_rv"));
  EXPECT_TRUE(IsKnownGuestCommand("timedatectl_show"));
  EXPECT_TRUE(IsKnownGuestCommand("w32tm_status"));
  EXPECT_FALSE(IsKnownGuestCommand(""));
  EXPECT_FALSE(IsKnownGuestCommand("sh"));
  EXPECT_FALSE(IsKnownGuestCommand("chronyc"));
  EXPECT_FALSE(IsKnownGuestCommand("CHRONYC_TRACKING"));
  EXPECT_EQ(AllGuestCommands().size(), 4u);
  for (const auto& c : AllGuestCommands()) {
    EXPECT_EQ(&GetGuestCommand(c.id), &c);
    EXPECT_EQ(FindGuestCommand(c.config_id), &c);
    EXPECT_EQ(c.path.find('/'), std::string_view::npos) << "no shells, no paths: " << c.path;
  }
}

// ---- chronyc -c tracking ----

TEST(ChronycTrackingTest, CapturedLocalStratum10) {
  auto r = ParseChronycTracking(Fixture("chronyc_tracking_captured_local10.txt"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->daemon, "chrony");
  EXPECT_EQ(r->status.state, SyncState::kSynchronised);
  EXPECT_EQ(r->status.stratum, 10);
  EXPECT_EQ(r->status.leap, LeapStatus::kNormal);
  EXPECT_EQ(r->reference, "7F7F0101");  // no name: the hex reference id
  EXPECT_DOUBLE_EQ(*r->root_delay_s, 0);
}

TEST(ChronycTrackingTest, CapturedUnreachableServer) {
  auto r = ParseChronycTracking(Fixture("chronyc_tracking_captured_unreachable.txt"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status.state, SyncState::kUnsynchronised);
  EXPECT_EQ(r->status.stratum, 0);
  EXPECT_EQ(r->status.leap, LeapStatus::kUnsynchronised);
  EXPECT_DOUBLE_EQ(*r->root_delay_s, 1.0);
  EXPECT_DOUBLE_EQ(*r->root_dispersion_s, 1.0);
}

TEST(ChronycTrackingTest, CapturedNoDaemonIsANamedError) {
  auto r = ParseChronycTracking(Fixture("chronyc_tracking_captured_nodaemon.txt"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("chronyc -c tracking"), std::string::npos);
  EXPECT_NE(r.error().message.find("506 Cannot talk to daemon"), std::string::npos);
}

// Files the lab engineer captured (tests/fixtures/guest_status/chrony_*_lab.txt).
TEST(ChronycTrackingTest, LabCaptures) {
  struct Case {
    const char* file;
    SyncState state;
    int stratum;
  };
  int seen = 0;
  for (const Case& c :
       {Case{"chrony_local10_tracking_csv_lab.txt", SyncState::kSynchronised, 10},
        Case{"chrony_unreachable_tracking_csv_lab.txt", SyncState::kUnsynchronised, 0}}) {
    if (!std::filesystem::exists(kFixtures / c.file)) continue;
    ++seen;
    auto r = ParseChronycTracking(Fixture(c.file));
    ASSERT_TRUE(r.ok()) << c.file << ": " << r.error().message;
    EXPECT_EQ(r->status.state, c.state) << c.file;
    EXPECT_EQ(r->status.stratum, c.stratum) << c.file;
  }
  if (seen == 0) GTEST_SKIP() << "no chrony_*_tracking_csv_lab.txt captured yet";
}

TEST(ChronycTrackingTest, DocumentedSynced) {
  auto r = ParseChronycTracking(Fixture("chronyc_tracking_documented_synced.txt"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status.state, SyncState::kSynchronised);
  EXPECT_EQ(r->status.stratum, 3);
  EXPECT_EQ(r->reference, "ntp1.example.net");
  EXPECT_DOUBLE_EQ(*r->last_offset_s, -0.000006747);
  EXPECT_DOUBLE_EQ(*r->root_delay_s, 0.013639022);
  EXPECT_DOUBLE_EQ(*r->root_dispersion_s, 0.001100737);
}

TEST(ChronycTrackingTest, LeapInsertPending) {
  auto r = ParseChronycTracking(Fixture("chronyc_tracking_documented_leap_insert.txt"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status.state, SyncState::kSynchronised);
  EXPECT_EQ(r->status.leap, LeapStatus::kInsertSecond);
}

TEST(ChronycTrackingTest, Stratum16IsUnsynchronised) {
  auto r = ParseChronycTracking("C0000201,192.0.2.1,16,1.0,0,0,0,0,0,0,0.1,0.1,64.0,Normal\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status.state, SyncState::kUnsynchronised);
  EXPECT_EQ(r->status.stratum, 16);
}

TEST(ChronycTrackingTest, CrlfAndExtraFields) {
  auto r = ParseChronycTracking(
      ToCrlf(Fixture("chronyc_tracking_documented_synced.txt")).insert(0, "\r\n"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status.stratum, 3);
  auto extra = ParseChronycTracking(
      "CB00710F,ntp1.example.net,3,1.5,0,0,0,0,0,0,0.01,0.001,64.2,Normal,future,fields\n");
  ASSERT_TRUE(extra.ok()) << extra.error().message;
  EXPECT_EQ(extra->status.leap, LeapStatus::kNormal);
}

TEST(ChronycTrackingTest, NamedFieldErrors) {
  auto bad_stratum =
      ParseChronycTracking("CB00710F,ntp1,x,1.5,0,0,0,0,0,0,0.01,0.001,64.2,Normal\n");
  ASSERT_FALSE(bad_stratum.ok());
  EXPECT_EQ(bad_stratum.error().message,
            "chronyc -c tracking: field 3 (stratum) is not an integer: 'x'");
  auto bad_delay = ParseChronycTracking("CB00710F,ntp1,3,1.5,0,0,0,0,0,0,1,5,0.001,64.2,Normal\n");
  ASSERT_FALSE(bad_delay.ok());  // a decimal comma splits the field: caught by the leap field
  auto bad_leap = ParseChronycTracking("CB00710F,ntp1,3,1.5,0,0,0,0,0,0,0.01,0.001,64.2,Maybe\n");
  ASSERT_FALSE(bad_leap.ok());
  EXPECT_NE(bad_leap.error().message.find("field 14 (leap status)"), std::string::npos);
  auto bad_refid = ParseChronycTracking("ZZ,ntp1,3,1.5,0,0,0,0,0,0,0.01,0.001,64.2,Normal\n");
  ASSERT_FALSE(bad_refid.ok());
  EXPECT_NE(bad_refid.error().message.find("field 1 (reference id)"), std::string::npos);
  auto nan_field = ParseChronycTracking("CB00710F,n,3,nan,0,0,0,0,0,0,0.01,0.001,64.2,Normal\n");
  ASSERT_FALSE(nan_field.ok());
  EXPECT_NE(nan_field.error().message.find("field 4 (reference time)"), std::string::npos);
}

TEST(ChronycTrackingTest, TruncatedAtEveryLength) {
  const std::string full = Fixture("chronyc_tracking_documented_synced.txt");
  const size_t last_comma = full.rfind(',');
  for (size_t n = 0; n <= last_comma; ++n) {
    auto r = ParseChronycTracking(std::string_view(full).substr(0, n));
    EXPECT_FALSE(r.ok()) << "accepted a cut at " << n << ": " << full.substr(0, n);
    if (!r.ok()) {
      EXPECT_EQ(r.error().message.rfind("chronyc -c tracking: ", 0), 0u) << r.error().message;
    }
  }
}

TEST(ChronycTrackingTest, GarbageQuotedAndShort) {
  std::string garbage(5000, '\xff');
  garbage[10] = '\0';
  auto r = ParseChronycTracking(garbage);
  ASSERT_FALSE(r.ok());
  EXPECT_LT(r.error().message.size(), 200u);
  EXPECT_NE(r.error().message.find("\\xff"), std::string::npos);
}

// ---- ntpq -c rv ----

TEST(NtpqRvTest, DocumentedSynced) {
  auto r = ParseNtpqRv(Fixture("ntpq_rv_documented_synced.txt"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->daemon, "ntpd");
  EXPECT_EQ(r->status.state, SyncState::kSynchronised);
  EXPECT_EQ(r->status.stratum, 3);
  EXPECT_EQ(r->status.leap, LeapStatus::kNormal);
  EXPECT_EQ(r->reference, "192.0.2.10");
  // ntpd's offset is reference minus local, in ms: negated, in seconds.
  EXPECT_DOUBLE_EQ(*r->last_offset_s, 0.001234567);
  EXPECT_DOUBLE_EQ(*r->root_delay_s, 0.025392);
  EXPECT_DOUBLE_EQ(*r->root_dispersion_s, 0.030725);
}

TEST(NtpqRvTest, DocumentedStartingUpIsUnsynchronised) {
  auto r = ParseNtpqRv(Fixture("ntpq_rv_documented_unsynced.txt"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status.state, SyncState::kUnsynchronised);
  EXPECT_EQ(r->status.stratum, 16);
  EXPECT_EQ(r->status.leap, LeapStatus::kUnsynchronised);
  EXPECT_EQ(r->reference, "INIT");
}

TEST(NtpqRvTest, DocumentedNtpsec) {
  auto r = ParseNtpqRv(ToCrlf(Fixture("ntpq_rv_documented_ntpsec_synced.txt")));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status.state, SyncState::kSynchronised);
  EXPECT_EQ(r->status.stratum, 2);
  EXPECT_EQ(r->reference, "203.0.113.7");
}

TEST(NtpqRvTest, SyncUnspecInStatusWordIsUnsynchronised) {
  auto r = ParseNtpqRv(
      "associd=0 status=0016 leap_none, sync_unspec, 1 event, restart,\n"
      "stratum=3, refid=192.0.2.1, offset=0.1\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status.state, SyncState::kUnsynchronised);
  EXPECT_EQ(r->status.leap, LeapStatus::kNormal);  // from the status word's top bits
}

TEST(NtpqRvTest, NamedErrors) {
  auto no_stratum = ParseNtpqRv("associd=0 status=0615 leap_none, sync_ntp,\nleap=00,\n");
  ASSERT_FALSE(no_stratum.ok());
  EXPECT_NE(no_stratum.error().message.find("ntpq -c rv: no stratum="), std::string::npos);
  auto bad_stratum = ParseNtpqRv("leap=00, stratum=three, offset=0.1\n");
  ASSERT_FALSE(bad_stratum.ok());
  EXPECT_EQ(bad_stratum.error().message, "ntpq -c rv: stratum= is not an integer: 'three'");
  auto bad_leap = ParseNtpqRv("leap=7, stratum=2\n");
  ASSERT_FALSE(bad_leap.ok());
  EXPECT_NE(bad_leap.error().message.find("leap="), std::string::npos);
  auto bad_offset = ParseNtpqRv("leap=00, stratum=2, offset=1,5\n");
  ASSERT_FALSE(bad_offset.ok());
  EXPECT_NE(bad_offset.error().message.find("offset="), std::string::npos);
  EXPECT_FALSE(ParseNtpqRv("").ok());
  EXPECT_FALSE(ParseNtpqRv("ntpq: read: Connection refused\n").ok());
}

TEST(NtpqRvTest, TruncatedNeverCrashes) {
  const std::string full = Fixture("ntpq_rv_documented_synced.txt");
  for (size_t n = 0; n <= full.size(); ++n) {
    auto r = ParseNtpqRv(std::string_view(full).substr(0, n));
    if (!r.ok()) {
      EXPECT_EQ(r.error().message.rfind("ntpq -c rv: ", 0), 0u);
    }
  }
  // Cut before "stratum=3": a clear error, not a guess.
  size_t cut = full.find("stratum=");
  EXPECT_FALSE(ParseNtpqRv(std::string_view(full).substr(0, cut)).ok());
}

// ---- timedatectl show ----

TEST(TimedatectlShowTest, DocumentedStates) {
  auto synced = ParseTimedatectlShow(Fixture("timedatectl_show_documented_synced.txt"));
  ASSERT_TRUE(synced.ok()) << synced.error().message;
  EXPECT_EQ(synced->daemon, "timesyncd");
  EXPECT_EQ(synced->status.state, SyncState::kSynchronised);
  EXPECT_FALSE(synced->status.stratum.has_value());
  EXPECT_EQ(synced->status.leap, LeapStatus::kUnknown);

  auto unsynced = ParseTimedatectlShow(ToCrlf(Fixture("timedatectl_show_documented_unsynced.txt")));
  ASSERT_TRUE(unsynced.ok()) << unsynced.error().message;
  EXPECT_EQ(unsynced->status.state, SyncState::kUnsynchronised);

  auto off = ParseTimedatectlShow(Fixture("timedatectl_show_documented_ntp_disabled.txt"));
  ASSERT_TRUE(off.ok()) << off.error().message;
  EXPECT_EQ(off->daemon, "none");
  EXPECT_EQ(off->status.state, SyncState::kUnknown);
}

TEST(TimedatectlShowTest, NamedErrors) {
  auto missing = ParseTimedatectlShow("Timezone=Etc/UTC\nLocalRTC=no\n");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("no NTPSynchronized="), std::string::npos);
  auto bad = ParseTimedatectlShow("NTPSynchronized=perhaps\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "timedatectl show: NTPSynchronized= is not yes or no: 'perhaps'");
  EXPECT_FALSE(ParseTimedatectlShow("Failed to connect to bus: No such file or directory\n").ok());
}

// ---- w32tm /query /status ----

TEST(W32tmStatusTest, DocumentedEnglish) {
  auto r = ParseW32tmStatus(Fixture("w32tm_status_documented_en.txt"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->daemon, "w32time");
  EXPECT_EQ(r->status.state, SyncState::kSynchronised);
  EXPECT_EQ(r->status.stratum, 4);
  EXPECT_EQ(r->status.leap, LeapStatus::kNormal);
  EXPECT_EQ(r->reference, "time.windows.com");
  EXPECT_DOUBLE_EQ(*r->root_delay_s, 0.03125);
  EXPECT_DOUBLE_EQ(*r->root_dispersion_s, 7.9765625);
  EXPECT_FALSE(r->last_offset_s.has_value());
}

TEST(W32tmStatusTest, DocumentedLocalCmosClockIsUnsynchronised) {
  auto r = ParseW32tmStatus(Fixture("w32tm_status_documented_en_unsynced.txt"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status.state, SyncState::kUnsynchronised);
  EXPECT_EQ(r->status.leap, LeapStatus::kUnsynchronised);
  EXPECT_EQ(r->reference, "Local CMOS Clock");
  // Leap 0 but a free-running source is still not synchronised.
  auto free_running = ParseW32tmStatus(
      "Leap Indicator: 0(no warning)\nStratum: 1 (primary reference - syncd by radio clock)\n"
      "Source: Free-running System Clock\n");
  ASSERT_TRUE(free_running.ok()) << free_running.error().message;
  EXPECT_EQ(free_running->status.state, SyncState::kUnsynchronised);
}

TEST(W32tmStatusTest, DocumentedHyperV) {
  auto r = ParseW32tmStatus(Fixture("w32tm_status_documented_en_hyperv.txt"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status.state, SyncState::kSynchronised);
  EXPECT_EQ(r->status.stratum, 2);
  EXPECT_EQ(r->reference, "VM IC Time Synchronization Provider");
}

TEST(W32tmStatusTest, GermanWithDecimalComma) {
  const std::string utf8 = Fixture("w32tm_status_documented_de.txt");
  // The same text in the console code page CP850 (ä=0x84, ö=0x94, ü=0x81).
  std::string cp850;
  for (size_t i = 0; i < utf8.size(); ++i) {
    if (utf8[i] == '\xc3' && i + 1 < utf8.size()) {
      char next = utf8[++i];
      cp850 += next == '\xa4' ? '\x84' : next == '\xb6' ? '\x94' : next == '\xbc' ? '\x81' : '?';
    } else {
      cp850 += utf8[i];
    }
  }
  for (const std::string& text : {utf8, cp850}) {
    auto r = ParseW32tmStatus(text);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->status.state, SyncState::kSynchronised);
    EXPECT_EQ(r->status.stratum, 3);
    EXPECT_EQ(r->status.leap, LeapStatus::kNormal);
    EXPECT_EQ(r->reference, "ptbtime1.ptb.de");
    EXPECT_DOUBLE_EQ(*r->root_delay_s, 0.046875);
    EXPECT_DOUBLE_EQ(*r->root_dispersion_s, 7.7810481);
  }
}

TEST(W32tmStatusTest, FrenchWithSpaceBeforeColon) {
  auto r = ParseW32tmStatus(Fixture("w32tm_status_documented_fr.txt"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status.state, SyncState::kSynchronised);
  EXPECT_EQ(r->status.stratum, 3);
  EXPECT_EQ(r->reference, "fr.pool.ntp.org");
  EXPECT_DOUBLE_EQ(*r->root_delay_s, 0.015625);
  EXPECT_DOUBLE_EQ(*r->root_dispersion_s, 7.8120117);
}

TEST(W32tmStatusTest, ServiceStoppedAndGarbageAreNamedErrors) {
  auto stopped = ParseW32tmStatus(Fixture("w32tm_status_documented_service_stopped.txt"));
  ASSERT_FALSE(stopped.ok());
  EXPECT_NE(stopped.error().message.find("w32tm /query /status: no Leap Indicator line"),
            std::string::npos);
  auto bad_stratum = ParseW32tmStatus("Leap Indicator: 0(no warning)\nStratum: many\n");
  ASSERT_FALSE(bad_stratum.ok());
  EXPECT_EQ(bad_stratum.error().message,
            "w32tm /query /status: Stratum is not an integer 0..255: 'many'");
  auto bad_delay = ParseW32tmStatus("Leap Indicator: 0\nStratum: 2\nRoot Delay: soon\n");
  ASSERT_FALSE(bad_delay.ok());
  EXPECT_NE(bad_delay.error().message.find("Root Delay"), std::string::npos);
  auto cut = ParseW32tmStatus("Leap Indicator: 0(no warning)\r\nStrat");
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.error().message.find("no Stratum line"), std::string::npos);
}

TEST(W32tmStatusTest, TruncatedNeverCrashes) {
  const std::string full = Fixture("w32tm_status_documented_de.txt");
  for (size_t n = 0; n <= full.size(); ++n) {
    auto r = ParseW32tmStatus(std::string_view(full).substr(0, n));
    if (!r.ok()) {
      EXPECT_EQ(r.error().message.rfind("w32tm /query /status: ", 0), 0u);
    }
  }
}

// ---- dispatch and helpers ----

TEST(GuestParsersTest, DispatchByCommandId) {
  EXPECT_EQ(ParseGuestCommandOutput(GuestCommandId::kChronycTracking,
                                    Fixture("chronyc_tracking_documented_synced.txt"))
                ->daemon,
            "chrony");
  EXPECT_EQ(
      ParseGuestCommandOutput(GuestCommandId::kNtpqRv, Fixture("ntpq_rv_documented_synced.txt"))
          ->daemon,
      "ntpd");
  EXPECT_EQ(ParseGuestCommandOutput(GuestCommandId::kTimedatectlShow,
                                    Fixture("timedatectl_show_documented_synced.txt"))
                ->daemon,
            "timesyncd");
  EXPECT_EQ(ParseGuestCommandOutput(GuestCommandId::kW32tmStatus,
                                    Fixture("w32tm_status_documented_en.txt"))
                ->daemon,
            "w32time");
}

TEST(ParseTextTest, Numbers) {
  EXPECT_EQ(ParseDouble("0.5"), 0.5);
  EXPECT_EQ(ParseDouble("+0.5"), 0.5);
  EXPECT_EQ(ParseDouble("-1e-3"), -1e-3);
  EXPECT_EQ(ParseDouble("0,5"), std::nullopt);
  EXPECT_EQ(ParseDouble("0,5", true), 0.5);
  EXPECT_EQ(ParseDouble("inf"), std::nullopt);
  EXPECT_EQ(ParseDouble("1e999"), std::nullopt);
  EXPECT_EQ(ParseDouble(""), std::nullopt);
  EXPECT_EQ(ParseInt(" 10 "), 10);
  EXPECT_EQ(ParseInt("99999999999999999999999"), std::nullopt);
  EXPECT_EQ(LeadingInt("3 (secondary)"), 3);
  EXPECT_EQ(LeadingInt("0(no warning)"), 0);
  EXPECT_EQ(LeadingDouble("7,5s", true), 7.5);
  EXPECT_EQ(LeadingDouble("s"), std::nullopt);
  EXPECT_EQ(LabelKey("Stammverz\xc3\xb6gerung"), "stammverzgerung");
  EXPECT_EQ(Quote("a'b\n"), "'a\\x27b\\x0a'");
}

}  // namespace
}  // namespace vmtime::guest_status
