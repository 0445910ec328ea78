// The libvirt collector against a real private libvirtd with two QEMU (TCG)
// guests running qemu-guest-agent (tests/lab, driven through its `vmlab`
// command line). The test plays the poller: it calls Collect() every
// `interval` and immediately when the collector's wakeup callback fires.
//
// Scenarios: accuracy of a -300 s guest clock step, a 5 s pause seen right
// after the resume event, a hung agent (libvirt-side timeout and exporter-side
// deadline) that never delays the other guest, a libvirtd restart without a
// collector restart, a destroyed domain gone within one round.
// Measured figures (round trip, uncertainty, step error, resume latency) are
// printed as "FIGURE ..." lines.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "exporter/collectors/libvirt/libvirt_collector.h"

namespace vmtime {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyTime = std::chrono::steady_clock::time_point;

const std::string kVmlab = std::string(VMTIME_SOURCE_DIR) + "/tests/lab/vmlab";

// Runs a shell command (bounded by `timeout`), returns exit status and stdout.
std::pair<int, std::string> Run(const std::string& cmd, int timeout_s = 300) {
  std::string full = "timeout " + std::to_string(timeout_s) + " " + cmd;
  FILE* p = popen(full.c_str(), "r");
  if (p == nullptr) return {-1, ""};
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class Lab {
 public:
  static Lab* Get() { return lab_; }
  static void Up() {
    char tmpl[] = "/tmp/vmtime-lvlab-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return;
    lab_ = new Lab();
    lab_->dir_ = tmpl;
    std::filesystem::remove(lab_->dir_);  // vmlab up creates it
    auto [rc, out] = Run(kVmlab + " up --dir " + lab_->dir_ + " --guests 2 --json");
    if (rc != 0) {
      lab_->error_ = "vmlab up failed (exit " + std::to_string(rc) + "): " + out;
      return;
    }
    try {
      auto j = nlohmann::json::parse(out.substr(out.rfind('{')));
      lab_->uri_ = j.at("uri").get<std::string>();
    } catch (const std::exception& e) {
      lab_->error_ = std::string("cannot parse vmlab up output: ") + e.what() + ": " + out;
    }
  }
  static void Down() {
    if (lab_ == nullptr) return;
    Run(kVmlab + " down --dir " + lab_->dir_, 120);
    std::filesystem::remove_all(lab_->dir_);
    delete lab_;
    lab_ = nullptr;
  }
  // `vmlab <verb> <dir> <args>`; fails the test on a non-zero exit.
  void Do(const std::string& verb, const std::string& args, int timeout_s = 120) {
    auto [rc, out] = Run(kVmlab + " " + verb + " " + dir_ + " " + args + " 2>&1", timeout_s);
    ASSERT_EQ(rc, 0) << "vmlab " << verb << " " << args << ": " << out;
  }
  const std::string& uri() const { return uri_; }
  const std::string& error() const { return error_; }

 private:
  static inline Lab* lab_ = nullptr;
  std::string dir_;
  std::string uri_;
  std::string error_;
};

// The test's poller: Collect() every `interval` and on wakeup; keeps the
// newest observation and sample per domain name.
class Poller {
 public:
  Poller(LibvirtConfig config, milliseconds interval) : interval_(interval) {
    config.uri = Lab::Get()->uri();
    collector_ = std::make_unique<LibvirtCollector>(config, SystemClock::Instance());
    collector_->SetWakeup([this] {
      std::lock_guard lock(mu_);
      woken_ = true;
      cv_.notify_all();
    });
  }
  ~Poller() { collector_.reset(); }

  struct Seen {
    DomainObservation obs;                       // newest observation
    std::optional<scoring::ClockSample> sample;  // newest sample
    SteadyTime sample_seen;                      // when Collect returned it
    int samples = 0;                             // samples seen so far
    bool woken = false;                          // the sample came with a wakeup
  };

  // Polls until pred(*this) or timeout; returns pred's last value.
  template <typename P>
  bool PollUntil(P pred, seconds timeout) {
    const SteadyTime end = std::chrono::steady_clock::now() + timeout;
    while (true) {
      CollectOnce();
      if (pred()) return true;
      std::unique_lock lock(mu_);
      const SteadyTime next = std::min(end, std::chrono::steady_clock::now() + interval_);
      cv_.wait_until(lock, next, [&] { return woken_; });
      if (std::chrono::steady_clock::now() >= end && !woken_) return pred();
    }
  }

  void CollectOnce() {
    bool woken;
    {
      std::lock_guard lock(mu_);
      woken = std::exchange(woken_, false);
    }
    Observations out;
    CollectContext ctx{
        SystemClock::Instance(), SystemClock::Instance().MonotonicNs() + kNsPerSecond, {}};
    last_status_ = collector_->Collect(ctx, out);
    collects_++;
    names_.clear();
    if (!out.libvirt) return;
    connected_ = out.libvirt->connected;
    for (const auto& d : out.libvirt->domains) {
      names_.push_back(d.name.str());
      Seen& s = seen_[d.name.str()];
      s.obs = d;
      if (d.sample) {
        s.sample = d.sample;
        s.sample_seen = std::chrono::steady_clock::now();
        s.samples++;
        s.woken = woken;
      }
    }
  }

  Seen& operator[](const std::string& name) { return seen_[name]; }
  bool Listed(const std::string& name) const {
    return std::find(names_.begin(), names_.end(), name) != names_.end();
  }
  const Status& last_status() const { return last_status_; }
  bool connected() const { return connected_; }

 private:
  milliseconds interval_;
  std::unique_ptr<LibvirtCollector> collector_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;
  std::map<std::string, Seen> seen_;
  std::vector<std::string> names_;
  Status last_status_;
  bool connected_ = false;
  int collects_ = 0;
};

class LibvirtLabTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Lab::Up(); }
  static void TearDownTestSuite() { Lab::Down(); }
  void SetUp() override {
    ASSERT_NE(Lab::Get(), nullptr) << "could not create a temporary directory";
    ASSERT_TRUE(Lab::Get()->error().empty()) << Lab::Get()->error();
  }
  static LibvirtConfig Config() {
    LibvirtConfig c;
    c.reconnect_backoff_max_s = 2;
    c.agent_retry_interval_s = 1;
    return c;
  }
};

TEST_F(LibvirtLabTest, SamplesEveryGuestWithSubMillisecondBracket) {
  Poller p(Config(), milliseconds(500));
  ASSERT_TRUE(
      p.PollUntil([&] { return p["g1"].samples >= 10 && p["g2"].samples >= 10; }, seconds(60)))
      << p.last_status().message() << " g1: " << p["g1"].obs.agent_error
      << " g2: " << p["g2"].obs.agent_error;
  for (const char* g : {"g1", "g2"}) {
    EXPECT_TRUE(p[g].obs.agent_up);
    EXPECT_EQ(p[g].obs.state, DomainState::kRunning);
    EXPECT_GE(p[g].sample->uncertainty_s, 0);
    // A freshly booted guest without NTP sits within a couple of seconds.
    EXPECT_LT(std::abs(p[g].sample->offset_s), 5.0);
    std::printf("FIGURE %s offset_s=%.6f uncertainty_s=%.6f rtt_s=%.6f\n", g, p[g].sample->offset_s,
                p[g].sample->uncertainty_s, p[g].obs.rtt_s);
  }
}

TEST_F(LibvirtLabTest, StepOfMinus300SecondsIsMeasuredExactly) {
  Poller p(Config(), milliseconds(500));
  ASSERT_TRUE(p.PollUntil([&] { return p["g1"].samples >= 3; }, seconds(60)));
  const scoring::ClockSample before = *p["g1"].sample;
  Lab::Get()->Do("step", "g1 -300");
  ASSERT_TRUE(p.PollUntil(
      [&] { return p["g1"].sample && p["g1"].sample->offset_s < before.offset_s - 250; },
      seconds(30)));
  const scoring::ClockSample after = *p["g1"].sample;
  const double measured_step = after.offset_s - before.offset_s;
  std::printf("FIGURE step injected=-300 measured=%.6f error=%.6f uncertainty=%.6f+%.6f\n",
              measured_step, measured_step + 300, before.uncertainty_s, after.uncertainty_s);
  // The lab sets guest = guest_read + step; the guest clock runs on during
  // the set call, so allow the bracket uncertainties plus 50 ms.
  EXPECT_NEAR(measured_step, -300.0, before.uncertainty_s + after.uncertainty_s + 0.05);
  Lab::Get()->Do("sync", "g1");
  ASSERT_TRUE(p.PollUntil(
      [&] { return p["g1"].sample && std::abs(p["g1"].sample->offset_s) < 1.0; }, seconds(30)));
}

TEST_F(LibvirtLabTest, PauseThenResumeShowsNegativeOffsetRightAfterTheEvent) {
  // Regular rounds every 20 s: a fresh post-resume sample can only come from
  // the resume event.
  Poller p(Config(), milliseconds(20'000));
  ASSERT_TRUE(p.PollUntil([&] { return p["g2"].samples >= 1; }, seconds(60)));
  const double before = p["g2"].sample->offset_s;
  const int samples_before = p["g2"].samples;
  std::thread pauser([] { Lab::Get()->Do("pause-for", "g2 5"); });
  // While paused: the domain is listed as paused (next regular round).
  pauser.join();
  const SteadyTime resumed = std::chrono::steady_clock::now();  // resume call returned
  ASSERT_TRUE(p.PollUntil(
      [&] { return p["g2"].samples > samples_before && p["g2"].sample->offset_s < before - 4; },
      seconds(10)));
  const double latency_s = std::chrono::duration<double>(p["g2"].sample_seen - resumed).count();
  std::printf("FIGURE resume offset_s=%.3f (before %.3f) visible %.3f s after resume returned\n",
              p["g2"].sample->offset_s, before, latency_s);
  EXPECT_TRUE(p["g2"].woken) << "post-resume sample did not come through the wakeup";
  EXPECT_LT(latency_s, 1.0);
  // The first sample after the pause is marked: neither a stop nor a step.
  EXPECT_TRUE(p["g2"].sample->after_interruption);
  // The next one is ordinary again.
  const int marked_at = p["g2"].samples;
  Lab::Get()->Do("sync", "g2");
  ASSERT_TRUE(p.PollUntil([&] { return p["g2"].samples > marked_at; }, seconds(45)));
  EXPECT_FALSE(p["g2"].sample->after_interruption);
}

TEST_F(LibvirtLabTest, SaveRestoreMarksTheFirstSampleAfterIt) {
  Poller p(Config(), milliseconds(1000));
  ASSERT_TRUE(p.PollUntil([&] { return p["g1"].samples >= 2; }, seconds(60)));
  EXPECT_FALSE(p["g1"].sample->after_interruption);
  const double before = p["g1"].sample->offset_s;
  const int samples_before = p["g1"].samples;
  // virDomainSave (the domain stops), 3 s, virDomainRestore (a new QEMU
  // process), then the lab waits for the agent. The lab's domains are
  // transient: while saved, g1 is not listed at all (a persistent domain
  // would be listed shut off, agent_attempted false).
  std::thread saver([] { Lab::Get()->Do("save-restore", "g1 3", 300); });
  const bool went_away = p.PollUntil([&] { return !p.Listed("g1"); }, seconds(60));
  const int samples_gone = p["g1"].samples;  // none arrive while it is not listed
  saver.join();
  EXPECT_TRUE(went_away);
  EXPECT_GE(samples_gone, samples_before);
  ASSERT_TRUE(p.PollUntil([&] { return p["g1"].samples > samples_gone; }, seconds(60)))
      << p["g1"].obs.agent_error;
  std::printf(
      "FIGURE save-restore: first sample after restore offset_s=%.3f (before %.3f) "
      "after_interruption=%d\n",
      p["g1"].sample->offset_s, before, p["g1"].sample->after_interruption);
  EXPECT_TRUE(p["g1"].sample->after_interruption);
  EXPECT_LT(p["g1"].sample->offset_s, before - 2);  // behind by about the time it was down
  const int marked_at = p["g1"].samples;
  ASSERT_TRUE(p.PollUntil([&] { return p["g1"].samples > marked_at; }, seconds(30)));
  EXPECT_FALSE(p["g1"].sample->after_interruption);
  Lab::Get()->Do("sync", "g1");
}

TEST_F(LibvirtLabTest, HungAgentPastExporterDeadlineDoesNotDelayOtherGuest) {
  LibvirtConfig c = Config();
  c.set_agent_timeout = false;  // rely on the exporter-side deadline only
  c.call_deadline_s = 3;
  Lab::Get()->Do("agent-timeout", "g1 -2");  // libvirt: block forever
  Poller p(c, milliseconds(1000));
  ASSERT_TRUE(
      p.PollUntil([&] { return p["g1"].samples >= 1 && p["g2"].samples >= 1; }, seconds(60)));
  Lab::Get()->Do("hang-agent", "g1 --for 20");
  const int g2_before = p["g2"].samples;
  ASSERT_TRUE(p.PollUntil(
      [&] { return p["g1"].obs.agent_error == "guest agent call exceeded deadline"; }, seconds(15)))
      << "g1 error: " << p["g1"].obs.agent_error;
  EXPECT_FALSE(p["g1"].obs.agent_up);
  ASSERT_TRUE(p.PollUntil([&] { return p["g2"].samples >= g2_before + 5; }, seconds(15)));
  EXPECT_TRUE(p["g2"].obs.agent_up);
  // The agent heals after 20 s; the stuck call returns and g1 is sampled again.
  ASSERT_TRUE(p.PollUntil([&] { return p["g1"].obs.agent_up; }, seconds(60)))
      << p["g1"].obs.agent_error;
}

TEST_F(LibvirtLabTest, HungAgentWithLibvirtTimeoutIsDownAndRecovers) {
  LibvirtConfig c = Config();
  c.set_agent_timeout = true;
  c.agent_timeout_s = 2;
  Poller p(c, milliseconds(1000));
  ASSERT_TRUE(
      p.PollUntil([&] { return p["g1"].samples >= 1 && p["g2"].samples >= 1; }, seconds(60)));
  Lab::Get()->Do("hang-agent", "g1 --for 15");
  const int g2_before = p["g2"].samples;
  ASSERT_TRUE(p.PollUntil([&] { return !p["g1"].obs.agent_up; }, seconds(15)));
  std::printf("FIGURE hung agent error: %s\n", p["g1"].obs.agent_error.c_str());
  EXPECT_NE(p["g1"].obs.agent_error.find("virDomainGetTime(domain 'g1')"), std::string::npos)
      << p["g1"].obs.agent_error;
  ASSERT_TRUE(p.PollUntil([&] { return p["g2"].samples >= g2_before + 5; }, seconds(15)));
  ASSERT_TRUE(p.PollUntil([&] { return p["g1"].obs.agent_up; }, seconds(60)))
      << p["g1"].obs.agent_error;
}

TEST_F(LibvirtLabTest, LibvirtdRestartNeedsNoCollectorRestart) {
  Poller p(Config(), milliseconds(500));
  ASSERT_TRUE(
      p.PollUntil([&] { return p["g1"].samples >= 1 && p["g2"].samples >= 1; }, seconds(60)));
  Lab::Get()->Do("kill-libvirtd", "");
  ASSERT_TRUE(p.PollUntil([&] { return !p.last_status().ok(); }, seconds(20)));
  std::printf("FIGURE while libvirtd is down: %s\n", p.last_status().message().c_str());
  EXPECT_FALSE(p.connected());
  Lab::Get()->Do("start-libvirtd", "");
  const int g1 = p["g1"].samples;
  const int g2 = p["g2"].samples;
  ASSERT_TRUE(p.PollUntil(
      [&] { return p["g1"].samples > g1 && p["g2"].samples > g2 && p.last_status().ok(); },
      seconds(30)))
      << p.last_status().message();
  EXPECT_TRUE(p.connected());
}

TEST_F(LibvirtLabTest, DestroyedDomainIsGoneWithinOneRound) {
  Poller p(Config(), milliseconds(500));
  ASSERT_TRUE(p.PollUntil([&] { return p.Listed("g2") && p["g2"].samples >= 1; }, seconds(60)));
  Lab::Get()->Do("destroy", "g2");
  p.CollectOnce();
  EXPECT_FALSE(p.Listed("g2"));
  EXPECT_TRUE(p.Listed("g1"));
}

}  // namespace
}  // namespace vmtime
