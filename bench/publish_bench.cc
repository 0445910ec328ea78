// Sample-to-snapshot latency and publish rate with the real Poller, Store
// and libvirt collector against libvirt's test driver holding N running
// domains (a generated node XML, like scripts/measure's fleet; its guest
// clocks are frozen, which does not matter here). One iteration = one
// exporter start: the first libvirt run lists the fleet, the agent workers
// sample every domain, and the publish callback records, for every VM whose
// newest sample changed, the time from the sample (bracket midpoint, host
// monotonic) to the publication of the snapshot that first contains it.
//
// - BM_SampleToSnapshot/N/1: as shipped (the scheduler's wakeup makes the
//   poller harvest, at most every Poller::kHarvestGapNs).
// - BM_SampleToSnapshot/N/0: wakeups ignored, i.e. the behaviour before the
//   harvest path: samples wait for the next libvirt run (interval 15 s).
// - agent_us: each virDomainGetTime is delayed by this much (the test
//   driver answers in microseconds; real agents take about a millisecond),
//   so a round lasts long enough to show the publish rate's ceiling.
// Counters: latency median / p99 / max (s), snapshots published while the
// round's samples arrived, their rate (1/s), the round's duration (first to
// last sample, s), and samples seen. Speed depends on the machine (2 shared
// vCPUs here); nothing asserts on it.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "exporter/collectors/libvirt/libvirt_collector.h"
#include "exporter/collectors/libvirt/real_libvirt_api.h"
#include "exporter/poller/poller.h"

namespace vmtime {
namespace {

// The real test-driver API with a fixed extra delay per guest call.
class SlowAgents final : public libvirt::LibvirtApi {
 public:
  SlowAgents(std::shared_ptr<libvirt::LibvirtApi> inner, std::chrono::microseconds delay)
      : inner_(std::move(inner)), delay_(delay) {}
  Result<std::vector<libvirt::DomainInfo>> ListDomains() override { return inner_->ListDomains(); }
  bool Connected() const override { return inner_->Connected(); }
  uint64_t ConnectionGeneration() const override { return inner_->ConnectionGeneration(); }
  Result<libvirt::GuestTime> GetTime(const std::string& uuid, const std::string& name) override {
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    return inner_->GetTime(uuid, name);
  }
  Status SetAgentTimeout(const std::string& uuid, const std::string& name, int s) override {
    return inner_->SetAgentTimeout(uuid, name, s);
  }
  void SetEventHandler(libvirt::DomainEventHandler h) override {
    inner_->SetEventHandler(std::move(h));
  }

 private:
  std::shared_ptr<libvirt::LibvirtApi> inner_;
  std::chrono::microseconds delay_;
};

// Forwards everything to the real collector; optionally drops the wakeup.
class Wrapped final : public Collector {
 public:
  Wrapped(std::shared_ptr<LibvirtCollector> inner, bool wake)
      : inner_(std::move(inner)), wake_(wake) {}
  std::string_view Name() const override { return inner_->Name(); }
  Status Collect(const CollectContext& ctx, Observations& out) override {
    return inner_->Collect(ctx, out);
  }
  void SetWakeup(std::function<void()> wake) override {
    if (wake_) inner_->SetWakeup(std::move(wake));
  }
  bool Harvest(Observations& out) override { return inner_->Harvest(out); }

 private:
  std::shared_ptr<LibvirtCollector> inner_;
  bool wake_;
};

struct Trace {
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<std::string, int64_t> seen;  // uuid -> newest sample's host_mono_ns
  std::vector<double> latencies_s;
  int64_t first_sample_mono = INT64_MAX;
  int64_t last_sample_mono = 0;
  int publishes_with_news = 0;
  int64_t first_news_publish_mono = 0;
  int64_t last_news_publish_mono = 0;

  void OnPublish(const Snapshot& snap, int64_t now) {
    std::lock_guard lock(mu);
    bool news = false;
    for (const VmView& v : snap.vms) {
      if (!v.last_sample) continue;
      int64_t& seen_mono = seen[v.uuid.str()];
      if (v.last_sample->host_mono_ns == seen_mono) continue;
      seen_mono = v.last_sample->host_mono_ns;
      latencies_s.push_back(NsToSeconds(now - seen_mono));
      first_sample_mono = std::min(first_sample_mono, seen_mono);
      last_sample_mono = std::max(last_sample_mono, seen_mono);
      news = true;
    }
    if (news) {
      if (publishes_with_news++ == 0) first_news_publish_mono = now;
      last_news_publish_mono = now;
    }
    cv.notify_all();
  }
};

std::filesystem::path WriteFleet(int n) {
  char tmpl[] = "/tmp/vmtime-pubbench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return {};
  std::filesystem::path dir = tmpl;
  std::ofstream f(dir / "node.xml");
  f << "<node>\n";
  for (int i = 0; i < n; ++i) {
    char uuid[40];
    std::snprintf(uuid, sizeof uuid, "%08x-3ea5-4e00-8000-%012x", i, i);
    f << "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>vm" << i
      << "</name><uuid>" << uuid
      << "</uuid><memory>65536</memory><os><type>hvm</type></os>"
         "<test:runstate>1</test:runstate></domain>\n";
  }
  f << "</node>\n";
  return dir;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(std::ceil(p / 100 * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(i, 1, v.size()) - 1];
}

void BM_SampleToSnapshot(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const bool wake = state.range(1) != 0;
  const std::chrono::microseconds delay(state.range(2));
  const std::filesystem::path dir = WriteFleet(n);
  if (dir.empty()) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  const Clock& clock = SystemClock::Instance();
  Config config;
  config.libvirt.uri = "test://" + (dir / "node.xml").string();
  CollectorConfig cc;  // defaults: 15 s interval
  config.collectors[CollectorId::kLibvirt] = cc;
  Trace trace;
  for (auto _ : state) {
    Store store(config);
    Poller poller(clock, store, [&](std::shared_ptr<const Snapshot> s) {
      trace.OnPublish(*s, clock.MonotonicNs());
    });
    libvirt::SchedulerOptions options;
    auto api = std::make_shared<SlowAgents>(
        std::make_shared<libvirt::RealLibvirtApi>(config.libvirt, clock), delay);
    auto inner = std::make_shared<LibvirtCollector>(config.libvirt, clock, api, options);
    poller.Configure({{std::make_shared<Wrapped>(inner, wake), cc}});
    poller.Start();
    std::unique_lock lock(trace.mu);
    trace.cv.wait_for(lock, std::chrono::seconds(120),
                      [&] { return static_cast<int>(trace.seen.size()) >= n; });
    lock.unlock();
    poller.Stop();
  }
  std::filesystem::remove_all(dir);
  std::lock_guard lock(trace.mu);
  if (static_cast<int>(trace.seen.size()) < n) {
    state.SkipWithError("not every domain was sampled within 120 s");
    return;
  }
  state.counters["latency_median_s"] = Percentile(trace.latencies_s, 50);
  state.counters["latency_p99_s"] = Percentile(trace.latencies_s, 99);
  state.counters["latency_max_s"] = Percentile(trace.latencies_s, 100);
  state.counters["samples"] = static_cast<double>(trace.latencies_s.size());
  state.counters["round_s"] = NsToSeconds(trace.last_sample_mono - trace.first_sample_mono);
  state.counters["publishes"] = trace.publishes_with_news;
  const double span_s = NsToSeconds(trace.last_news_publish_mono - trace.first_news_publish_mono);
  state.counters["publish_rate_hz"] = span_s > 0 ? (trace.publishes_with_news - 1) / span_s : 0;
}
BENCHMARK(BM_SampleToSnapshot)
    ->Args({1'000, 1, 0})
    ->Args({10'000, 1, 0})
    ->Args({10'000, 1, 1'000})
    ->Args({1'000, 0, 0})
    ->Args({10'000, 0, 0})
    ->ArgNames({"domains", "wake", "agent_us"})
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

}  // namespace
}  // namespace vmtime
