// Cost of the libvirt collector's moving parts:
// - BM_SchedulerRound: one Collect round over N domains with a fake API whose
//   guest calls return at once (bookkeeping + worker dispatch per domain).
// - BM_TestDriverCollect: Collect() (list with state, reconcile) against
//   libvirt's test driver holding N domains.
// - BM_LiveGuestSample: one K=3 bracketed virDomainGetTime sample of a real
//   guest, i.e. the per-VM poll cost, when VMTIME_LIBVIRT_URI names a libvirt
//   with a running guest agent (e.g. a tests/lab lab); skipped otherwise.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "exporter/collectors/libvirt/libvirt_collector.h"
#include "exporter/collectors/libvirt/real_libvirt_api.h"

namespace vmtime {
namespace {

class InstantApi : public libvirt::LibvirtApi {
 public:
  explicit InstantApi(int n) {
    for (int i = 0; i < n; ++i) {
      domains_.push_back(
          {"uuid-" + std::to_string(i), "vm" + std::to_string(i), DomainState::kRunning});
    }
  }
  Result<std::vector<libvirt::DomainInfo>> ListDomains() override { return domains_; }
  bool Connected() const override { return true; }
  uint64_t ConnectionGeneration() const override { return 1; }
  Result<libvirt::GuestTime> GetTime(const std::string&, const std::string&) override {
    return libvirt::GuestTime{1'700'000'000, 0};
  }
  Status SetAgentTimeout(const std::string&, const std::string&, int) override {
    return Status::Ok();
  }
  void SetEventHandler(libvirt::DomainEventHandler) override {}

 private:
  std::vector<libvirt::DomainInfo> domains_;
};

void BM_SchedulerRound(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  FakeClock clock;
  LibvirtConfig config;
  libvirt::SchedulerOptions opts;
  opts.background_tick = false;
  LibvirtCollector c(config, clock, std::make_shared<InstantApi>(n), opts);
  CollectContext ctx{clock, 0, {}};
  for (auto _ : state) {
    clock.AdvanceSeconds(15);
    Observations out;
    benchmark::DoNotOptimize(c.Collect(ctx, out));
    c.scheduler().WaitIdle(std::chrono::milliseconds(60'000));
  }
  state.SetItemsProcessed(state.iterations() * n);  // domains sampled
}
BENCHMARK(BM_SchedulerRound)->Arg(100)->Arg(10'000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_TestDriverCollect(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  char tmpl[] = "/tmp/vmtime-lvbench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  std::filesystem::path dir = tmpl;
  {
    std::ofstream f(dir / "node.xml");
    f << "<node>\n";
    for (int i = 0; i < n; ++i) {
      char uuid[40];
      std::snprintf(uuid, sizeof uuid, "%08x-0000-4000-8000-%012x", i, i);
      // Shut off: listed and reconciled, not sampled (isolates the list cost).
      f << "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>vm"
        << i << "</name><uuid>" << uuid
        << "</uuid><memory>65536</memory><os><type>hvm</type></os>"
           "<test:runstate>5</test:runstate></domain>\n";
    }
    f << "</node>\n";
  }
  LibvirtConfig config;
  config.uri = "test://" + (dir / "node.xml").string();
  {
    LibvirtCollector c(config, SystemClock::Instance());
    CollectContext ctx{SystemClock::Instance(), 0, {}};
    Observations warm;  // the first Collect connects (parses the XML): not timed
    (void)c.Collect(ctx, warm);
    for (auto _ : state) {
      Observations out;
      Status st = c.Collect(ctx, out);
      if (!st.ok() || out.libvirt->domains.size() != static_cast<size_t>(n)) {
        state.SkipWithError(st.ok() ? "wrong domain count" : st.message().c_str());
        break;
      }
    }
  }
  std::filesystem::remove_all(dir);
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_TestDriverCollect)->Arg(100)->Arg(10'000)->Unit(benchmark::kMillisecond);

void BM_LiveGuestSample(benchmark::State& state) {
  const char* uri = std::getenv("VMTIME_LIBVIRT_URI");
  if (uri == nullptr) {
    state.SkipWithError("set VMTIME_LIBVIRT_URI to a libvirt with a running guest agent");
    return;
  }
  LibvirtConfig config;
  config.uri = uri;
  libvirt::RealLibvirtApi api(config, SystemClock::Instance());
  auto list = api.ListDomains();
  if (!list.ok()) {
    state.SkipWithError(list.error().message.c_str());
    return;
  }
  const libvirt::DomainInfo* dom = nullptr;
  for (const auto& d : *list) {
    if (d.state == DomainState::kRunning && api.GetTime(d.uuid.str(), d.name.str()).ok()) {
      dom = &d;
      break;
    }
  }
  if (dom == nullptr) {
    state.SkipWithError("no running domain answers guest-get-time");
    return;
  }
  double min_rtt = 1e9;
  for (auto _ : state) {
    for (int k = 0; k < config.samples; ++k) {  // one sample = K bracketed calls
      const int64_t t0 = SystemClock::Instance().MonotonicNs();
      auto t = api.GetTime(dom->uuid.str(), dom->name.str());
      const int64_t t1 = SystemClock::Instance().MonotonicNs();
      if (!t.ok()) {
        state.SkipWithError(t.error().message.c_str());
        return;
      }
      min_rtt = std::min(min_rtt, NsToSeconds(t1 - t0));
    }
  }
  state.counters["min_rtt_ms"] = min_rtt * 1e3;
  state.SetLabel(dom->name.str());
}
BENCHMARK(BM_LiveGuestSample)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace vmtime
