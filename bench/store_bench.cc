// Cost of the store at fleet scale (bench/fleet.h describes the fleet):
// - BM_StoreApplyLibvirtRound: Store::Apply of one libvirt collector run of N
//   domains, each running domain with a new clock sample, while every
//   history is already full (64 samples), i.e. the steady state after 16 min.
// - BM_StoreBuild: Store::Build of a snapshot of N VMs with full histories,
//   which scores every VM (drift regression, steps, gates) and sorts them.
// Both report time per op (the benchmark's own time) and per VM (counter
// "per_vm", seconds). Arg 1,000 next to 10,000 shows whether cost is linear.
#include <benchmark/benchmark.h>

#include "bench/fleet.h"

namespace vmtime::bench {
namespace {

constexpr int kHistory = 64;

void PerVm(benchmark::State& state, int n) {
  state.counters["vms"] = n;
  state.counters["per_vm"] = benchmark::Counter(
      n, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_StoreApplyLibvirtRound(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const Config config = DefaultConfig();
  auto store = FilledStore(config, n, kHistory);
  int round = kHistory;
  for (auto _ : state) {
    state.PauseTiming();
    Observations obs;
    obs.libvirt = LibvirtRound(n, round++);
    state.ResumeTiming();
    store->Apply(obs);
    state.PauseTiming();
    obs = Observations();  // free the observation outside the timed region
    state.ResumeTiming();
  }
  if (store->vm_count() != static_cast<size_t>(n)) state.SkipWithError("store lost VMs");
  PerVm(state, n);
}
BENCHMARK(BM_StoreApplyLibvirtRound)->Arg(1'000)->Arg(10'000)->Unit(benchmark::kMillisecond);

void BM_StoreBuild(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const Config config = DefaultConfig();
  auto store = FilledStore(config, n, kHistory);
  const int64_t now_mono_ns = RoundMonoNs(kHistory - 1) + 5 * kSecondNs;
  const int64_t now_real_ns = kEpochRealNs + now_mono_ns;
  size_t vms = 0;
  for (auto _ : state) {
    auto snap = store->Build(now_mono_ns, now_real_ns);
    vms = snap->vms.size();
    benchmark::DoNotOptimize(snap);
  }
  if (vms != static_cast<size_t>(n)) state.SkipWithError("snapshot lost VMs");
  PerVm(state, n);
}
BENCHMARK(BM_StoreBuild)->Arg(1'000)->Arg(10'000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace vmtime::bench
