// guest_status logic with a scripted fake guest agent: the guest-exec
// polling loop (deadline on FakeClock, no sleeps), command selection by OS
// and by what the guest has, error naming, the collector's scheduling
// (one guest-exec per guest, bounded concurrency, only running domains)
// and the error metric.
#include "exporter/collectors/guest_status/guest_status_collector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <vector>

#include "exporter/collectors/guest_status/guest_exec.h"
#include "exporter/collectors/guest_status/guest_probe.h"
#include "exporter/exposition/guest_status_metrics.h"
#include "exporter/exposition/metrics.h"

namespace vmtime::guest_status {
namespace {

using nlohmann::json;
using scoring::SyncState;

std::string B64(std::string_view in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += k[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += k[(acc << (6 - bits)) & 63];
  while (out.size() % 4) out += '=';
  return out;
}

constexpr const char* kLinuxOsInfo =
    R"({"return":{"kernel-release":"6.1.0-56-cloud-amd64","machine":"x86_64"}})";
constexpr const char* kWindowsOsInfo =
    R"({"return":{"id":"mswindows","name":"Microsoft Windows","kernel-version":"10.0"}})";
constexpr const char* kLocal10 =
    "7F7F0101,,10,1795587642.416782969,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,"
    "0.000000000,0.000000000,0.0,Normal\n";
constexpr const char* kUnsynced =
    "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,1.000000000,"
    "1.000000000,0.0,Not synchronised\n";

// A program as the fake guest runs it.
struct Program {
  int exit_code = 0;
  std::string out;
  std::string err;
  int polls_before_exit = 0;  // guest-exec-status replies with exited=false first
  bool never_exits = false;
  bool agent_truncated = false;
};

struct FakeGuest {
  std::string os_info = kLinuxOsInfo;
  std::map<std::string, Program> programs;  // by path; others are "not installed"
  bool agent_down = false;
  bool status_down = false;  // guest-exec-status fails (the exec itself works)
};

// Speaks the guest agent protocol for a set of fake guests. Thread-safe.
class FakeAgent : public GuestAgent {
 public:
  Result<std::string> Command(const std::string& uuid, const std::string& text,
                              int timeout_s) override {
    json req = json::parse(text);
    std::string cmd = req["execute"];
    std::unique_lock lock(mu_);
    // Concurrent calls, per guest and in total, while this one is inside.
    active_[uuid]++;
    active_total_++;
    max_per_guest = std::max(max_per_guest, active_[uuid]);
    max_total = std::max(max_total, active_total_);
    struct Leave {
      FakeAgent* self;
      std::string uuid;
      ~Leave() {
        self->active_[uuid]--;
        self->active_total_--;
      }
    } leave{this, uuid};  // runs with mu_ held (destroyed before `lock`)
    calls.push_back(uuid + " " + cmd);
    timeouts.push_back(timeout_s);
    auto g = guests.find(uuid);
    if (g == guests.end()) return Error{"no domain with uuid " + uuid};
    if (g->second.agent_down) return Error{"Guest agent is not responding: timeout"};
    if (cmd == "guest-get-osinfo") return g->second.os_info;
    if (cmd == "guest-exec") {
      std::string path = req["arguments"]["path"];
      std::vector<std::string> args = req["arguments"]["arg"];
      EXPECT_TRUE(req["arguments"]["capture-output"].get<bool>());
      execs.push_back(uuid + " " + path);
      auto p = g->second.programs.find(path);
      if (p == g->second.programs.end()) {
        return Error{
            "internal error: unable to execute QEMU agent command 'guest-exec': Guest "
            "agent command failed, error was 'Failed to execute child process \xe2\x80\x9c" +
            path + "\xe2\x80\x9d (No such file or directory)'"};
      }
      int pid = next_pid_++;
      running_[pid] = {uuid, p->second, 0};
      if (hold_execs) {  // keep the exec "running" until released
        cv_.wait(lock, [&] { return !hold_execs; });
      }
      return json{{"return", {{"pid", pid}}}}.dump();
    }
    if (cmd == "guest-exec-status") {
      if (g->second.status_down) return Error{"Guest agent is not responding: timeout"};
      int pid = req["arguments"]["pid"];
      auto r = running_.find(pid);
      if (r == running_.end()) return Error{"Invalid parameter 'pid'"};
      Run& run = r->second;
      if (run.program.never_exits || run.polls < run.program.polls_before_exit) {
        run.polls++;
        return json{{"return", {{"exited", false}}}}.dump();
      }
      json ret = {{"exited", true}, {"exitcode", run.program.exit_code}};
      if (!run.program.out.empty()) ret["out-data"] = B64(run.program.out);
      if (!run.program.err.empty()) ret["err-data"] = B64(run.program.err);
      if (run.program.agent_truncated) ret["out-truncated"] = true;
      running_.erase(r);
      return json{{"return", ret}}.dump();
    }
    return Error{"The command " + cmd + " has not been found"};
  }

  Result<std::vector<RunningDomain>> ListRunning() override {
    std::lock_guard lock(mu_);
    if (list_fails) return Error{"virConnectListAllDomains: connection closed"};
    std::vector<RunningDomain> out;
    for (const auto& [uuid, g] : guests) {
      if (!stopped.contains(uuid)) out.push_back({"dom-" + uuid, uuid});
    }
    return out;
  }

  void Release() {
    {
      std::lock_guard lock(mu_);
      hold_execs = false;
    }
    cv_.notify_all();
  }
  // Lets the program started as `pid` exit at its next status poll.
  void Finish(int pid) {
    std::lock_guard lock(mu_);
    if (auto r = running_.find(pid); r != running_.end()) r->second.program.never_exits = false;
  }
  size_t RunningCount() {
    std::lock_guard lock(mu_);
    return running_.size();
  }
  int ExecCount() {
    std::lock_guard lock(mu_);
    return static_cast<int>(execs.size());
  }

  // Test-visible state (guard with care: tests read it when no worker runs).
  std::map<std::string, FakeGuest> guests;
  std::set<std::string> stopped;  // listed as not running
  bool list_fails = false;
  bool hold_execs = false;
  std::vector<std::string> calls, execs;
  std::vector<int> timeouts;
  int max_per_guest = 0, max_total = 0;

 private:
  struct Run {
    std::string uuid;
    Program program;
    int polls = 0;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, Run> running_;
  std::map<std::string, int> active_;
  int active_total_ = 0;
  int next_pid_ = 100;
};

// Sleeper that only advances the fake clock.
Sleeper Advancing(FakeClock& clock, int64_t* slept = nullptr) {
  return [&clock, slept](int64_t ns) {
    clock.Advance(ns);
    if (slept) *slept += ns;
  };
}

ProbeOptions AllCommands() {
  ProbeOptions o;
  for (const auto& c : AllGuestCommands()) o.commands.push_back(c.id);
  return o;
}

// ---- guest-exec ----

TEST(GuestExecTest, RequestIsFixedArgvWithoutShell) {
  json j = json::parse(GuestExecRequestJson(GetGuestCommand(GuestCommandId::kChronycTracking)));
  EXPECT_EQ(j["execute"], "guest-exec");
  EXPECT_EQ(j["arguments"]["path"], "chronyc");
  EXPECT_EQ(j["arguments"]["arg"], json::array({"-c", "tracking"}));
  EXPECT_EQ(j["arguments"]["capture-output"], true);
}

TEST(GuestExecTest, PollsUntilExitedAndDecodes) {
  FakeAgent agent;
  agent.guests["u1"].programs["chronyc"] = {0, kLocal10, "", 3};
  FakeClock clock;
  int64_t slept = 0;
  auto o = RunGuestExec(agent, "u1", GetGuestCommand(GuestCommandId::kChronycTracking),
                        {clock.MonotonicNs() + 5 * kNsPerSecond, 65536}, clock,
                        Advancing(clock, &slept));
  ASSERT_EQ(o.kind, GuestExecOutcome::Kind::kExited) << o.message;
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.out, kLocal10);
  EXPECT_FALSE(o.out_truncated);
  EXPECT_GT(slept, 0);
  EXPECT_EQ(std::count(agent.calls.begin(), agent.calls.end(), "u1 guest-exec-status"), 4);
  for (int t : agent.timeouts) EXPECT_TRUE(t >= 1 && t <= 5) << t;
}

TEST(GuestExecTest, DeadlineBoundsANeverEndingCommand) {
  FakeAgent agent;
  Program hang;
  hang.never_exits = true;
  agent.guests["u1"].programs["chronyc"] = hang;
  FakeClock clock;
  const int64_t start = clock.MonotonicNs();
  auto o = RunGuestExec(agent, "u1", GetGuestCommand(GuestCommandId::kChronycTracking),
                        {start + 2 * kNsPerSecond, 65536}, clock, Advancing(clock));
  EXPECT_EQ(o.kind, GuestExecOutcome::Kind::kTimeout);
  EXPECT_NE(o.message.find("chronyc -c tracking: still running at the deadline"),
            std::string::npos);
  EXPECT_LE(clock.MonotonicNs(), start + 2 * kNsPerSecond);
  EXPECT_LT(agent.calls.size(), 100u);  // polls back off
}

TEST(GuestExecTest, NotInstalledIsRecognised) {
  FakeAgent agent;
  agent.guests["u1"];
  FakeClock clock;
  auto o = RunGuestExec(agent, "u1", GetGuestCommand(GuestCommandId::kNtpqRv),
                        {clock.MonotonicNs() + kNsPerSecond, 65536}, clock, Advancing(clock));
  EXPECT_EQ(o.kind, GuestExecOutcome::Kind::kNotFound);
  EXPECT_NE(o.message.find("No such file or directory"), std::string::npos);
}

TEST(GuestExecTest, OutputCappedAndAgentTruncationKept) {
  FakeAgent agent;
  agent.guests["u1"].programs["chronyc"] = {0, std::string(1000, 'a'), "", 0};
  Program t{0, "abc", "", 0};
  t.agent_truncated = true;
  agent.guests["u1"].programs["ntpq"] = t;
  FakeClock clock;
  auto o = RunGuestExec(agent, "u1", GetGuestCommand(GuestCommandId::kChronycTracking),
                        {clock.MonotonicNs() + kNsPerSecond, 100}, clock, Advancing(clock));
  ASSERT_EQ(o.kind, GuestExecOutcome::Kind::kExited);
  EXPECT_EQ(o.out.size(), 100u);
  EXPECT_TRUE(o.out_truncated);
  auto o2 = RunGuestExec(agent, "u1", GetGuestCommand(GuestCommandId::kNtpqRv),
                         {clock.MonotonicNs() + kNsPerSecond, 100}, clock, Advancing(clock));
  ASSERT_EQ(o2.kind, GuestExecOutcome::Kind::kExited);
  EXPECT_EQ(o2.out, "abc");
  EXPECT_TRUE(o2.out_truncated);
}

TEST(GuestExecTest, Base64) {
  bool truncated = false;
  EXPECT_EQ(DecodeBase64("aGVsbG8=", 100, &truncated), "hello");
  EXPECT_EQ(DecodeBase64("aGVs\nbG8", 100, &truncated), "hello");
  EXPECT_FALSE(truncated);
  EXPECT_EQ(DecodeBase64("aGVsbG8=", 2, &truncated), "he");
  EXPECT_TRUE(truncated);
  EXPECT_EQ(DecodeBase64("aGV*", 100, nullptr), std::nullopt);
  EXPECT_EQ(DecodeBase64("aG=V", 100, nullptr), std::nullopt);
}

TEST(GuestExecTest, OsInfo) {
  EXPECT_EQ(ParseOsInfoReply(kLinuxOsInfo), GuestOsFamily::kLinux);
  EXPECT_EQ(ParseOsInfoReply(kWindowsOsInfo), GuestOsFamily::kWindows);
  EXPECT_EQ(ParseOsInfoReply(R"({"return":{"id":"debian","name":"Debian GNU/Linux"}})"),
            GuestOsFamily::kLinux);
  EXPECT_EQ(ParseOsInfoReply(R"({"return":{}})"), GuestOsFamily::kUnknown);
  EXPECT_EQ(ParseOsInfoReply("not json"), GuestOsFamily::kUnknown);
  EXPECT_EQ(ParseOsInfoReply(R"({"error":{"desc":"no"}})"), GuestOsFamily::kUnknown);
}

// ---- selection and probing ----

TEST(SelectCommandsTest, ByOsConfigAndPreference) {
  std::vector<GuestCommandId> all = AllCommands().commands;
  using enum GuestCommandId;
  EXPECT_EQ(SelectCommands(GuestOsFamily::kLinux, all, std::nullopt),
            (std::vector{kChronycTracking, kNtpqRv, kTimedatectlShow}));
  EXPECT_EQ(SelectCommands(GuestOsFamily::kWindows, all, std::nullopt),
            (std::vector{kW32tmStatus}));
  EXPECT_EQ(SelectCommands(GuestOsFamily::kUnknown, all, std::nullopt), all);
  EXPECT_EQ(SelectCommands(GuestOsFamily::kLinux, all, kTimedatectlShow),
            (std::vector{kTimedatectlShow, kChronycTracking, kNtpqRv}));
  // A preference no longer configured is ignored; so is one for another OS.
  std::vector<GuestCommandId> only_ntpq = {kNtpqRv};
  EXPECT_EQ(SelectCommands(GuestOsFamily::kLinux, only_ntpq, kChronycTracking),
            (std::vector{kNtpqRv}));
  EXPECT_EQ(SelectCommands(GuestOsFamily::kWindows, all, kChronycTracking),
            (std::vector{kW32tmStatus}));
  EXPECT_TRUE(SelectCommands(GuestOsFamily::kWindows, only_ntpq, std::nullopt).empty());
}

TEST(ProbeGuestTest, ChronyLocalStratum10) {
  FakeAgent agent;
  agent.guests["u1"].programs["chronyc"] = {0, kLocal10, "", 1};
  FakeClock clock;
  ProbeMemory mem;
  auto obs = ProbeGuest(agent, "u1", AllCommands(), mem, clock, Advancing(clock));
  EXPECT_EQ(obs.uuid, "u1");
  EXPECT_EQ(obs.daemon, "chrony");
  EXPECT_EQ(obs.error, "");
  EXPECT_EQ(obs.status.state, SyncState::kSynchronised);
  EXPECT_EQ(obs.status.stratum, 10);
  EXPECT_EQ(obs.status.measured_mono_ns, clock.MonotonicNs());
  EXPECT_EQ(mem.preferred, GuestCommandId::kChronycTracking);
  EXPECT_TRUE(mem.os_known);
  EXPECT_EQ(agent.execs, std::vector<std::string>{"u1 chronyc"});
}

TEST(ProbeGuestTest, NoDaemonIsUnknownNotAnAlarm) {
  // The lab guest without chronyd: chronyc exists but prints 506 and exits
  // 1 (captured), ntpq and timedatectl are not installed.
  FakeAgent agent;
  agent.guests["u1"].programs["chronyc"] = {1, "506 Cannot talk to daemon\n", "", 0};
  FakeClock clock;
  ProbeMemory mem;
  auto obs = ProbeGuest(agent, "u1", AllCommands(), mem, clock, Advancing(clock));
  EXPECT_EQ(obs.daemon, "none");
  EXPECT_EQ(obs.status.state, SyncState::kUnknown);
  EXPECT_FALSE(obs.status.stratum.has_value());
  EXPECT_EQ(GuestStatusErrorOf(obs.error), GuestStatusError::kNoDaemon);
  EXPECT_EQ(obs.error,
            "no_daemon: no time daemon found (chronyc -c tracking: daemon not running; ntpq -c "
            "rv: not installed; timedatectl show: not installed)");
  EXPECT_EQ(agent.execs, (std::vector<std::string>{"u1 chronyc", "u1 ntpq", "u1 timedatectl"}));
}

TEST(ProbeGuestTest, FallsBackAndRemembersWhatWorked) {
  FakeAgent agent;
  agent.guests["u1"].programs["timedatectl"] = {0, "NTP=yes\nNTPSynchronized=yes\n", "", 0};
  FakeClock clock;
  ProbeMemory mem;
  auto obs = ProbeGuest(agent, "u1", AllCommands(), mem, clock, Advancing(clock));
  EXPECT_EQ(obs.daemon, "timesyncd");
  EXPECT_EQ(obs.status.state, SyncState::kSynchronised);
  agent.execs.clear();
  agent.calls.clear();
  obs = ProbeGuest(agent, "u1", AllCommands(), mem, clock, Advancing(clock));
  EXPECT_EQ(obs.daemon, "timesyncd");
  EXPECT_EQ(agent.execs, std::vector<std::string>{"u1 timedatectl"});  // straight to it
  EXPECT_EQ(std::count(agent.calls.begin(), agent.calls.end(), "u1 guest-get-osinfo"), 0);
}

TEST(ProbeGuestTest, WindowsRunsOnlyW32tm) {
  FakeAgent agent;
  agent.guests["w"].os_info = kWindowsOsInfo;
  agent.guests["w"].programs["w32tm"] = {
      0, "Leap Indicator: 3(not synchronized)\r\nStratum: 0 (unspecified)\r\n", "", 0};
  agent.guests["w"].programs["chronyc"] = {0, kLocal10, "", 0};  // must not be run
  FakeClock clock;
  ProbeMemory mem;
  auto obs = ProbeGuest(agent, "w", AllCommands(), mem, clock, Advancing(clock));
  EXPECT_EQ(obs.daemon, "w32time");
  EXPECT_EQ(obs.status.state, SyncState::kUnsynchronised);
  EXPECT_EQ(agent.execs, std::vector<std::string>{"w w32tm"});
}

TEST(ProbeGuestTest, UnsynchronisedChrony) {
  FakeAgent agent;
  agent.guests["u1"].programs["chronyc"] = {0, kUnsynced, "", 0};
  FakeClock clock;
  ProbeMemory mem;
  auto obs = ProbeGuest(agent, "u1", AllCommands(), mem, clock, Advancing(clock));
  EXPECT_EQ(obs.status.state, SyncState::kUnsynchronised);
  EXPECT_EQ(obs.status.leap, scoring::LeapStatus::kUnsynchronised);
  EXPECT_EQ(obs.error, "");
}

TEST(ProbeGuestTest, ParseFailureIsNamed) {
  FakeAgent agent;
  agent.guests["u1"].programs["chronyc"] = {
      0, "CB00710F,ntp1,x,1.5,0,0,0,0,0,0,0.01,0.001,64.2,Normal\n", "", 0};
  FakeClock clock;
  ProbeMemory mem;
  auto obs = ProbeGuest(agent, "u1", AllCommands(), mem, clock, Advancing(clock));
  EXPECT_EQ(obs.daemon, "chrony");
  EXPECT_EQ(obs.status.state, SyncState::kUnknown);
  EXPECT_EQ(obs.error,
            "parse_failed: chronyc -c tracking: field 3 (stratum) is not an integer: 'x'");
  EXPECT_FALSE(mem.preferred.has_value());
}

TEST(ProbeGuestTest, NonZeroExitIsExecFailed) {
  FakeAgent agent;
  agent.guests["u1"].programs["chronyc"] = {2, "", "chronyc: permission denied\n", 0};
  FakeClock clock;
  ProbeMemory mem;
  auto obs = ProbeGuest(agent, "u1", AllCommands(), mem, clock, Advancing(clock));
  EXPECT_EQ(obs.error,
            "exec_failed: chronyc -c tracking: exited with code 2: 'chronyc: permission denied'");
}

TEST(ProbeGuestTest, TruncatedOutputIsNotParsed) {
  FakeAgent agent;
  agent.guests["u1"].programs["chronyc"] = {0, kLocal10, "", 0};
  FakeClock clock;
  ProbeMemory mem;
  ProbeOptions o = AllCommands();
  o.max_output_bytes = 20;
  auto obs = ProbeGuest(agent, "u1", o, mem, clock, Advancing(clock));
  EXPECT_EQ(GuestStatusErrorOf(obs.error), GuestStatusError::kParseFailed);
  EXPECT_NE(obs.error.find("output truncated"), std::string::npos);
  EXPECT_EQ(obs.status.state, SyncState::kUnknown);
}

TEST(ProbeGuestTest, TimeoutStopsTheProbe) {
  FakeAgent agent;
  Program hang;
  hang.never_exits = true;
  agent.guests["u1"].programs["chronyc"] = hang;
  agent.guests["u1"].programs["ntpq"] = {0, "leap=00, stratum=2\n", "", 0};
  FakeClock clock;
  ProbeMemory mem;
  ProbeOptions o = AllCommands();
  o.exec_timeout_s = 3;
  const int64_t start = clock.MonotonicNs();
  auto obs = ProbeGuest(agent, "u1", o, mem, clock, Advancing(clock));
  EXPECT_EQ(GuestStatusErrorOf(obs.error), GuestStatusError::kTimeout);
  EXPECT_EQ(obs.status.state, SyncState::kUnknown);
  EXPECT_LE(clock.MonotonicNs() - start, 3 * kNsPerSecond);
  EXPECT_EQ(agent.execs, std::vector<std::string>{"u1 chronyc"});
}

TEST(ProbeGuestTest, NoSecondExecWhileAnEarlierOneStillRuns) {
  FakeAgent agent;
  Program hang;
  hang.never_exits = true;
  hang.out = kLocal10;
  agent.guests["u1"].programs["chronyc"] = hang;
  FakeClock clock;
  ProbeMemory mem;
  ProbeOptions o = AllCommands();
  o.exec_timeout_s = 1;
  auto first = ProbeGuest(agent, "u1", o, mem, clock, Advancing(clock));
  EXPECT_EQ(GuestStatusErrorOf(first.error), GuestStatusError::kTimeout);
  ASSERT_TRUE(mem.stuck_pid.has_value());
  // Next round: it still runs, so nothing new is started.
  auto second = ProbeGuest(agent, "u1", o, mem, clock, Advancing(clock));
  EXPECT_EQ(GuestStatusErrorOf(second.error), GuestStatusError::kTimeout);
  EXPECT_NE(second.error.find("still running in the guest; not starting another"),
            std::string::npos);
  EXPECT_EQ(agent.execs.size(), 1u);
  EXPECT_EQ(agent.RunningCount(), 1u);
  // Once it has exited, probing resumes normally.
  agent.Finish(static_cast<int>(*mem.stuck_pid));
  agent.guests["u1"].programs["chronyc"] = {0, kLocal10, "", 0};
  auto third = ProbeGuest(agent, "u1", o, mem, clock, Advancing(clock));
  EXPECT_EQ(third.error, "");
  EXPECT_EQ(third.status.stratum, 10);
  EXPECT_FALSE(mem.stuck_pid.has_value());
  EXPECT_EQ(agent.execs.size(), 2u);
}

TEST(ProbeGuestTest, AgentDownIsExecFailed) {
  FakeAgent agent;
  agent.guests["u1"].agent_down = true;
  FakeClock clock;
  ProbeMemory mem;
  auto obs = ProbeGuest(agent, "u1", AllCommands(), mem, clock, Advancing(clock));
  EXPECT_EQ(GuestStatusErrorOf(obs.error), GuestStatusError::kExecFailed);
  EXPECT_NE(obs.error.find("Guest agent is not responding"), std::string::npos);
  EXPECT_FALSE(mem.os_known);  // asked again next time
}

TEST(ProbeGuestTest, ErrorKindNames) {
  EXPECT_EQ(GuestStatusErrorOf(""), GuestStatusError::kNone);
  EXPECT_EQ(GuestStatusErrorOf("timeout: x"), GuestStatusError::kTimeout);
  EXPECT_EQ(GuestStatusErrorOf("no_daemon: x"), GuestStatusError::kNoDaemon);
  EXPECT_EQ(GuestStatusErrorOf("parse_failed: x"), GuestStatusError::kParseFailed);
  EXPECT_EQ(GuestStatusErrorOf("something else"), GuestStatusError::kExecFailed);
}

// ---- collector ----

CollectContext Ctx(FakeClock& clock, double seconds = 60) {
  return CollectContext{clock, clock.MonotonicNs() + SecondsToNs(seconds), {}};
}

TEST(GuestStatusCollectorTest, ReportsEveryRunningGuestAndSkipsOthers) {
  auto agent = std::make_shared<FakeAgent>();
  agent->guests["a"].programs["chronyc"] = {0, kLocal10, "", 2};
  agent->guests["b"].programs["chronyc"] = {0, kUnsynced, "", 0};
  agent->guests["c"];  // no daemon
  agent->guests["paused"].programs["chronyc"] = {0, kLocal10, "", 0};
  agent->stopped.insert("paused");
  FakeClock clock;
  CollectorOptions o;
  o.probe = AllCommands();
  GuestStatusCollector c(agent, o, clock, Advancing(clock));
  EXPECT_EQ(c.Name(), "guest_status");
  Observations out;
  ASSERT_TRUE(c.Collect(Ctx(clock), out).ok());
  ASSERT_TRUE(out.guest_status.has_value());
  std::map<std::string, GuestStatusObservation> by_uuid;
  for (const auto& g : out.guest_status->guests) by_uuid[g.uuid] = g;
  ASSERT_EQ(by_uuid.size(), 3u);
  EXPECT_EQ(by_uuid["a"].status.stratum, 10);
  EXPECT_EQ(by_uuid["b"].status.state, SyncState::kUnsynchronised);
  EXPECT_EQ(by_uuid["c"].status.state, SyncState::kUnknown);
  EXPECT_EQ(GuestStatusErrorOf(by_uuid["c"].error), GuestStatusError::kNoDaemon);
  for (const auto& call : agent->calls) EXPECT_NE(call.rfind("paused ", 0), 0u) << call;

  // A domain that stops running disappears from the next round.
  agent->stopped.insert("a");
  Observations out2;
  ASSERT_TRUE(c.Collect(Ctx(clock), out2).ok());
  for (const auto& g : out2.guest_status->guests) EXPECT_NE(g.uuid, "a");
  EXPECT_EQ(out2.guest_status->guests.size(), 2u);
}

TEST(GuestStatusCollectorTest, BoundedConcurrencyAndOneExecPerGuest) {
  auto agent = std::make_shared<FakeAgent>();
  for (int i = 0; i < 6; ++i) {
    agent->guests["g" + std::to_string(i)].programs["chronyc"] = {0, kLocal10, "", 0};
  }
  agent->hold_execs = true;  // every guest-exec blocks until released
  FakeClock clock;
  CollectorOptions o;
  o.probe = AllCommands();
  o.concurrency = 2;
  GuestStatusCollector c(agent, o, clock, Advancing(clock));

  // Round 1 ends at its deadline with the probes still blocked: nothing yet.
  std::atomic<bool> stop_advancing = false;
  std::thread advancer([&] {
    while (!stop_advancing) {
      clock.Advance(kNsPerSecond);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  Observations r1;
  ASSERT_TRUE(c.Collect(Ctx(clock, 5), r1).ok());
  EXPECT_TRUE(r1.guest_status->guests.empty());
  // Round 2 while the same probes still hang: no second exec for any guest.
  Observations r2;
  ASSERT_TRUE(c.Collect(Ctx(clock, 5), r2).ok());
  stop_advancing = true;
  advancer.join();
  EXPECT_EQ(agent->ExecCount(), 2);  // only `concurrency` guests reached guest-exec
  agent->Release();
  Observations r3;
  ASSERT_TRUE(c.Collect(Ctx(clock, 3600), r3).ok());
  EXPECT_EQ(r3.guest_status->guests.size(), 6u);
  EXPECT_EQ(agent->max_per_guest, 1);
  EXPECT_LE(agent->max_total, 2);
  // Round 3 may probe again the guests whose first probe finished before it
  // started (a new round); every guest is reported, and the two held past
  // their deadline were reported as timeouts unless re-probed after exiting.
  for (const auto& g : r3.guest_status->guests) {
    EXPECT_TRUE(g.error.empty() || GuestStatusErrorOf(g.error) == GuestStatusError::kTimeout)
        << g.uuid << ": " << g.error;
  }
}

TEST(GuestStatusCollectorTest, ListFailureFailsTheRound) {
  auto agent = std::make_shared<FakeAgent>();
  agent->list_fails = true;
  FakeClock clock;
  GuestStatusCollector c(agent, {}, clock, Advancing(clock));
  Observations out;
  Status s = c.Collect(Ctx(clock), out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("listing running domains"), std::string::npos);
}

TEST(GuestStatusCollectorTest, OptionsFromConfig) {
  Config cfg;
  cfg.guest_status.commands = {"w32tm_status", "chronyc_tracking"};
  cfg.guest_status.exec_timeout_s = 2.5;
  cfg.guest_status.max_output_bytes = 1234;
  cfg.libvirt.concurrency = 16;
  auto o = OptionsFromConfig(cfg);
  EXPECT_EQ(o.probe.commands,
            (std::vector{GuestCommandId::kW32tmStatus, GuestCommandId::kChronycTracking}));
  EXPECT_EQ(o.probe.exec_timeout_s, 2.5);
  EXPECT_EQ(o.probe.max_output_bytes, 1234u);
  EXPECT_EQ(o.concurrency, 4);
  // A reload that changes what the collector reads must recreate it.
  Config other = cfg;
  EXPECT_TRUE(CollectorSettingsEqual(CollectorId::kGuestStatus, other, cfg));
  other.guest_status.commands = {"chronyc_tracking"};
  EXPECT_FALSE(CollectorSettingsEqual(CollectorId::kGuestStatus, other, cfg));
  other = cfg;
  other.libvirt.uri = "qemu+unix:///system?socket=/x";
  EXPECT_FALSE(CollectorSettingsEqual(CollectorId::kGuestStatus, other, cfg));
}

TEST(GuestStatusCollectorTest, DisabledMakesNoCollector) {
  Config cfg;
  cfg.collectors[CollectorId::kGuestStatus].enabled = false;
  FakeClock clock;
  EXPECT_EQ(MakeGuestStatusCollector(cfg, clock), nullptr);
  EXPECT_EQ(MakeGuestStatusCollector(Config{}, clock), nullptr);  // the table's default: off
  auto parsed = ParseConfig("web:\n  listen_address: ':9958'\n", "t.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(MakeGuestStatusCollector(*parsed, clock), nullptr);  // the built-in default: off
  cfg.collectors[CollectorId::kGuestStatus].enabled = true;
  EXPECT_NE(MakeGuestStatusCollector(cfg, clock), nullptr);  // connects lazily: no I/O here
}

// Destroying the collector while a probe is blocked in the agent is bounded;
// the probe, when it returns later, touches nothing of the collector.
TEST(GuestStatusCollectorTest, DestroyWithBlockedProbeLeavesItBehind) {
  auto agent = std::make_shared<FakeAgent>();
  agent->guests["g"].programs["chronyc"] = {0, kLocal10, "", 0};
  agent->hold_execs = true;
  FakeClock clock;
  CollectorOptions o;
  o.probe = AllCommands();
  auto c = std::make_unique<GuestStatusCollector>(agent, o, clock, Advancing(clock));
  Observations out;
  ASSERT_TRUE(c->Collect(Ctx(clock, 0), out).ok());  // returns at once: deadline now
  for (int i = 0; i < 10'000 && agent->ExecCount() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(agent->ExecCount(), 1);
  c.reset();  // grace period, then the blocked probe is left behind
  agent->Release();
  for (int i = 0; i < 10'000 && agent.use_count() > 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(agent.use_count(), 1);  // the probe (co-owning the agent) has gone
}

// ---- agent replies of the wrong shape ----

// Replays scripted reply texts, one per agent call, in order.
class ScriptedAgent : public GuestAgent {
 public:
  explicit ScriptedAgent(std::vector<std::string> replies) : replies_(std::move(replies)) {}
  Result<std::string> Command(const std::string&, const std::string&, int) override {
    if (next_ >= replies_.size()) return Error{"no more replies"};
    return replies_[next_++];
  }
  Result<std::vector<RunningDomain>> ListRunning() override { return std::vector<RunningDomain>{}; }

 private:
  std::vector<std::string> replies_;
  size_t next_ = 0;
};

// Runs chronyc through replies: guest-exec's reply, then guest-exec-status's.
GuestExecOutcome RunScripted(std::vector<std::string> replies) {
  ScriptedAgent agent(std::move(replies));
  FakeClock clock;
  return RunGuestExec(agent, "dom-uuid-1", GetGuestCommand(GuestCommandId::kChronycTracking),
                      {clock.MonotonicNs() + kNsPerSecond, 64}, clock, Advancing(clock));
}

// The crash found by fuzzing: "desc" of another type made the JSON library
// throw. Every member of every reply is type-checked, and the error names
// the request, the domain and the member.
TEST(GuestExecTest, WrongTypesInRepliesAreNamedErrorsNotExceptions) {
  using Kind = GuestExecOutcome::Kind;
  struct Case {
    std::vector<std::string> replies;
    std::string message;  // expected, exactly
    int64_t pid;          // the outcome's pid (-1: nothing left running)
  };
  const std::string ok_exec = R"({"return":{"pid":7}})";
  const std::vector<Case> cases = {
      {{R"({"error":{"class":"GenericError","desc":42}})"},
       "chronyc -c tracking: guest-exec reply from domain dom-uuid-1: \"error.desc\" is number, "
       "expected a string",
       -1},
      {{R"({"error":{"desc":["a"]}})"},
       "chronyc -c tracking: guest-exec reply from domain dom-uuid-1: \"error.desc\" is array, "
       "expected a string",
       -1},
      {{R"({"error":"boom"})"},
       "chronyc -c tracking: guest-exec reply from domain dom-uuid-1: \"error\" is string, "
       "expected an object",
       -1},
      {{R"({"error":{"desc":"Guest agent is busy"}})"},
       "chronyc -c tracking: guest-exec: Guest agent is busy",
       -1},
      {{R"({"return":{"pid":"7"}})"},
       "chronyc -c tracking: guest-exec reply from domain dom-uuid-1: \"return.pid\" is string, "
       "expected an integer",
       -1},
      {{R"({"return":{"pid":-3}})"},
       "chronyc -c tracking: guest-exec reply from domain dom-uuid-1: \"return.pid\" -3 is out "
       "of range",
       -1},
      {{R"({"return":[7]})"},
       "chronyc -c tracking: guest-exec reply from domain dom-uuid-1: \"return\" is array, "
       "expected an object",
       -1},
      {{ok_exec, R"({"error":{"desc":null}})"},
       "chronyc -c tracking: guest-exec-status reply from domain dom-uuid-1: \"error.desc\" is "
       "null, expected a string",
       7},
      {{ok_exec, R"({"return":{"exited":"yes"}})"},
       "chronyc -c tracking: guest-exec-status reply from domain dom-uuid-1: \"return.exited\" "
       "is string, expected a boolean",
       7},
      {{ok_exec, R"({"return":{"exited":true,"exitcode":"0"}})"},
       "chronyc -c tracking: guest-exec-status reply from domain dom-uuid-1: "
       "\"return.exitcode\" is string, expected an integer",
       -1},
      {{ok_exec, R"({"return":{"exited":true,"exitcode":4294967296}})"},
       "chronyc -c tracking: guest-exec-status reply from domain dom-uuid-1: "
       "\"return.exitcode\" 4294967296 is out of range",
       -1},
      {{ok_exec, R"({"return":{"exited":true,"exitcode":0,"out-data":12}})"},
       "chronyc -c tracking: guest-exec-status reply from domain dom-uuid-1: "
       "\"return.out-data\" is number, expected a string",
       -1},
      {{ok_exec, R"({"return":{"exited":true,"exitcode":0,"out-truncated":"no"}})"},
       "chronyc -c tracking: guest-exec-status reply from domain dom-uuid-1: "
       "\"return.out-truncated\" is string, expected a boolean",
       -1},
      {{ok_exec, R"({"return":{"exited":true,"signal":{}}})"},
       "chronyc -c tracking: guest-exec-status reply from domain dom-uuid-1: "
       "\"return.signal\" is object, expected an integer",
       -1},
  };
  for (const auto& c : cases) {
    GuestExecOutcome o;
    ASSERT_NO_THROW(o = RunScripted(c.replies)) << c.replies.back();
    EXPECT_EQ(o.kind, Kind::kFailed) << c.replies.back();
    EXPECT_EQ(o.message, c.message) << c.replies.back();
    EXPECT_EQ(o.pid, c.pid) << c.replies.back();
  }
}

// The agent-reply fuzz seeds (tests/fuzz/seeds/guest_status_exec_reply_fuzz,
// NUL-separated replies) replayed the way the fuzz target does, in the unit
// suite: none throws, every failure is a named message.
TEST(GuestExecTest, FuzzSeedsReplayWithoutExceptions) {
  const std::filesystem::path dir =
      std::filesystem::path(VMTIME_SOURCE_DIR) / "tests/fuzz/seeds/guest_status_exec_reply_fuzz";
  int seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> replies;
    size_t start = 0;
    while (start <= text.size()) {
      size_t end = text.find('\0', start);
      if (end == std::string::npos) end = text.size();
      replies.push_back(text.substr(start, end - start));
      start = end + 1;
    }
    ++seeds;
    EXPECT_NO_THROW((void)ParseOsInfo(replies[0], "fuzz")) << entry.path();
    GuestExecOutcome o;
    ASSERT_NO_THROW(o = RunScripted(replies)) << entry.path();
    if (o.kind != GuestExecOutcome::Kind::kExited) {
      EXPECT_FALSE(o.message.empty()) << entry.path();
    }
  }
  EXPECT_GE(seeds, 10);
}

TEST(GuestExecTest, OsInfoWrongTypesAreNamed) {
  auto os = ParseOsInfo(R"({"return":{"id":5,"kernel-release":"6.1"}})", "dom-uuid-1");
  ASSERT_FALSE(os.ok());
  EXPECT_EQ(os.error().message,
            "guest-get-osinfo reply from domain dom-uuid-1: \"return.id\" is number, expected a "
            "string");
  os = ParseOsInfo(R"({"error":{"desc":true}})", "dom-uuid-1");
  ASSERT_FALSE(os.ok());
  EXPECT_EQ(os.error().message,
            "guest-get-osinfo reply from domain dom-uuid-1: \"error.desc\" is boolean, expected "
            "a string");
  EXPECT_EQ(ParseOsInfoReply(R"({"return":{"name":["Windows"]}})"), GuestOsFamily::kUnknown);
  auto linux_os = ParseOsInfo(kLinuxOsInfo, "dom-uuid-1");
  ASSERT_TRUE(linux_os.ok());
  EXPECT_EQ(*linux_os, GuestOsFamily::kLinux);
}

// ---- outstanding guest-exec pids ----

// guest-exec-status failing after the start: the program may still run, so
// its pid is remembered and reaped before anything else starts.
TEST(ProbeGuestTest, PidRememberedWhenExecStatusFails) {
  FakeAgent agent;
  agent.guests["u1"].programs["chronyc"] = {0, kLocal10, "", 0};
  agent.guests["u1"].status_down = true;
  FakeClock clock;
  ProbeMemory mem;
  ProbeOptions o = AllCommands();
  auto first = ProbeGuest(agent, "u1", o, mem, clock, Advancing(clock));
  EXPECT_EQ(GuestStatusErrorOf(first.error), GuestStatusError::kExecFailed);
  ASSERT_TRUE(mem.stuck_pid.has_value());
  EXPECT_EQ(*mem.stuck_pid, 100);
  // Still unanswered: nothing new starts.
  auto second = ProbeGuest(agent, "u1", o, mem, clock, Advancing(clock));
  EXPECT_NE(second.error.find("(pid 100) is still running in the guest; not starting another"),
            std::string::npos)
      << second.error;
  EXPECT_EQ(agent.execs.size(), 1u);
  // The agent answers again: the old status is reaped, then a normal probe.
  agent.guests["u1"].status_down = false;
  auto third = ProbeGuest(agent, "u1", o, mem, clock, Advancing(clock));
  EXPECT_EQ(third.error, "");
  EXPECT_EQ(third.status.stratum, 10);
  EXPECT_FALSE(mem.stuck_pid.has_value());
  EXPECT_EQ(agent.RunningCount(), 0u);  // both programs' statuses were collected
  EXPECT_EQ(agent.execs.size(), 2u);
}

TEST(OutstandingExecsTest, BoundedInAgeAndNumber) {
  OutstandingExecs t(/*max_entries=*/2, /*max_age_ns=*/10 * kNsPerSecond);
  t.Remember("a", 1, GuestCommandId::kNtpqRv, 0);
  t.Remember("a", 1, GuestCommandId::kNtpqRv, 5 * kNsPerSecond);  // same pid keeps its age
  ASSERT_TRUE(t.Get("a", 9 * kNsPerSecond).has_value());
  EXPECT_EQ(t.Get("a", 9 * kNsPerSecond)->command, GuestCommandId::kNtpqRv);
  EXPECT_FALSE(t.Get("a", 11 * kNsPerSecond).has_value());  // too old: forgotten
  EXPECT_EQ(t.size(), 0u);
  t.Remember("a", 1, GuestCommandId::kChronycTracking, 20 * kNsPerSecond);
  t.Remember("b", 2, GuestCommandId::kChronycTracking, 21 * kNsPerSecond);
  t.Remember("c", 3, GuestCommandId::kChronycTracking, 22 * kNsPerSecond);  // evicts "a"
  EXPECT_EQ(t.size(), 2u);
  EXPECT_FALSE(t.Get("a", 22 * kNsPerSecond).has_value());
  t.Forget("b", 99);  // another pid: kept
  EXPECT_TRUE(t.Get("b", 22 * kNsPerSecond).has_value());
  t.Forget("b", 2);
  EXPECT_FALSE(t.Get("b", 22 * kNsPerSecond).has_value());
  EXPECT_TRUE(t.BeginProbe("x"));
  EXPECT_FALSE(t.BeginProbe("x"));
  t.EndProbe("x");
  EXPECT_TRUE(t.BeginProbe("x"));
}

// A collector re-created by a reload shares the table: the pid its
// predecessor left running is reaped first, and no second exec starts
// beside it.
TEST(GuestStatusCollectorTest, OutstandingPidSurvivesCollectorRecreation) {
  auto agent = std::make_shared<FakeAgent>();
  Program hang;
  hang.never_exits = true;
  agent->guests["g"].programs["chronyc"] = hang;
  FakeClock clock;
  CollectorOptions o;
  o.probe = AllCommands();
  o.probe.exec_timeout_s = 1;
  o.outstanding = std::make_shared<OutstandingExecs>();
  auto first = std::make_unique<GuestStatusCollector>(agent, o, clock, Advancing(clock));
  Observations r1;
  ASSERT_TRUE(first->Collect(Ctx(clock), r1).ok());
  ASSERT_EQ(r1.guest_status->guests.size(), 1u);
  EXPECT_EQ(GuestStatusErrorOf(r1.guest_status->guests[0].error), GuestStatusError::kTimeout);
  ASSERT_EQ(o.outstanding->size(), 1u);
  first.reset();  // the reload replaces the collector

  auto second = std::make_unique<GuestStatusCollector>(agent, o, clock, Advancing(clock));
  Observations r2;
  ASSERT_TRUE(second->Collect(Ctx(clock), r2).ok());
  ASSERT_EQ(r2.guest_status->guests.size(), 1u);
  EXPECT_NE(r2.guest_status->guests[0].error.find("(pid 100) is still running in the guest"),
            std::string::npos)
      << r2.guest_status->guests[0].error;
  EXPECT_EQ(agent->ExecCount(), 1);

  agent->Finish(100);
  agent->guests["g"].programs["chronyc"] = {0, kLocal10, "", 0};
  Observations r3;
  ASSERT_TRUE(second->Collect(Ctx(clock), r3).ok());
  ASSERT_EQ(r3.guest_status->guests.size(), 1u);
  EXPECT_EQ(r3.guest_status->guests[0].error, "");
  EXPECT_EQ(r3.guest_status->guests[0].status.stratum, 10);
  EXPECT_EQ(o.outstanding->size(), 0u);
  EXPECT_EQ(agent->RunningCount(), 0u);
}

// A probe the old instance left blocked in libvirt keeps the guest: the new
// instance does not start a second exec beside it, and the late probe's
// outcome lands in the shared table.
TEST(GuestStatusCollectorTest, NoSecondProbeBesideAPredecessorsBlockedOne) {
  auto agent = std::make_shared<FakeAgent>();
  agent->guests["g"].programs["chronyc"] = {0, kLocal10, "", 0};
  agent->hold_execs = true;
  FakeClock clock;
  CollectorOptions o;
  o.probe = AllCommands();
  o.outstanding = std::make_shared<OutstandingExecs>();
  auto first = std::make_unique<GuestStatusCollector>(agent, o, clock, Advancing(clock));
  Observations r1;
  ASSERT_TRUE(first->Collect(Ctx(clock, 0), r1).ok());
  for (int i = 0; i < 10'000 && agent->ExecCount() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(agent->ExecCount(), 1);
  first.reset();  // grace period, then the blocked probe is left behind

  auto second = std::make_unique<GuestStatusCollector>(agent, o, clock, Advancing(clock));
  Observations r2;
  ASSERT_TRUE(second->Collect(Ctx(clock), r2).ok());
  ASSERT_EQ(r2.guest_status->guests.size(), 1u);
  EXPECT_EQ(r2.guest_status->guests[0].error,
            "timeout: a probe started before the last reload is still running in this guest; "
            "not starting another");
  EXPECT_EQ(agent->ExecCount(), 1);

  agent->Release();  // the old probe returns and finishes its exec
  for (int i = 0; i < 10'000 && !o.outstanding->BeginProbe("g"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  o.outstanding->EndProbe("g");
  Observations r3;
  ASSERT_TRUE(second->Collect(Ctx(clock), r3).ok());
  EXPECT_EQ(r3.guest_status->guests[0].error, "");
  EXPECT_EQ(agent->max_per_guest, 1);
}

// ---- error metric ----

TEST(GuestStatusMetricsTest, ErrorSeriesOnlyWhileFailing) {
  Snapshot s;
  s.libvirt_enabled = true;
  VmView ok, failing, absent;
  ok.name = "ok";
  ok.guest = std::make_shared<const GuestStatusObservation>();
  failing.name = "failing";
  failing.uuid = "u";
  GuestStatusObservation failed;
  failed.error = "timeout: chronyc -c tracking: still running at the deadline";
  failing.guest = std::make_shared<const GuestStatusObservation>(failed);
  absent.name = "absent";
  s.vms = {absent, failing, ok};
  exposition::FamilyBuilder out;
  exposition::AppendVmMetrics(s, out);
  const auto fams = out.Take();
  const auto it = std::find_if(fams.begin(), fams.end(), [](const auto& f) {
    return f.name == "vmtime_vm_guest_status_error";
  });
  ASSERT_NE(it, fams.end());
  ASSERT_EQ(it->metric.size(), 1u);
  const auto& labels = it->metric[0].label;
  ASSERT_EQ(labels.size(), 3u);
  EXPECT_EQ(labels[0].value, "failing");
  EXPECT_EQ(labels[2].name, "error");
  EXPECT_EQ(labels[2].value, "timeout");
  EXPECT_EQ(it->metric[0].gauge.value, 1);
  // The text writer writes the same series.
  EXPECT_NE(
      exposition::RenderText(s).find(
          "vmtime_vm_guest_status_error{domain=\"failing\",uuid=\"u\",error=\"timeout\"} 1\n"),
      std::string::npos);
}

}  // namespace
}  // namespace vmtime::guest_status
