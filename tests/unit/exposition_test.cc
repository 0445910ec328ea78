// Exposition: a golden file for a fixed snapshot, the JSON view, the status
// page, and snapshot swaps under concurrent scrapes.
//
// Regenerate the golden file after an intended change with:
//   VMTIME_UPDATE_GOLDEN=1 build/tests/exposition_test
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <regex>
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

// A fixed store: three VMs (healthy, stepped back 8 minutes, agent down),
// timex, and collector runs. Everything is built from constants.
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
    lv.domains = {healthy, stepped, down, paused};
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
  ASSERT_EQ(j["vms"].size(), 4u);
  // Sorted by domain.
  EXPECT_EQ(j["vms"][0]["domain"], "batch-1");
  EXPECT_TRUE(j["vms"][0]["offset_seconds"].is_null());
  EXPECT_EQ(j["vms"][1]["domain"], "db-1");
  EXPECT_DOUBLE_EQ(j["vms"][1]["offset_seconds"].get<double>(), -480.0);
  EXPECT_EQ(j["vms"][1]["steps_total"]["backward"], 1);
  EXPECT_TRUE(j["vms"][1]["health_score"].is_number());
  EXPECT_TRUE(j["vms"][1]["components"].contains("offset"));
  EXPECT_TRUE(j["host"]["timex"]["synchronized"].get<bool>());
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
        const std::string gen = snap->vms[0].uuid;
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
