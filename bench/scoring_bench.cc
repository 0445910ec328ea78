// Benchmark of the scoring engine at fleet scale: one round scores 10,000
// VMs, each with a 64-sample history (15 s polls, so the whole history lies
// inside the default 1 h drift window), as the store does after every poll
// round. The fleet mixes healthy VMs with drifting, stepped, stopped and
// stale ones and with/without the optional guest and host status.
// Reports time per round (the benchmark's own time) and per VM (counter
// "per_vm", seconds). Target: one round under 5 ms on one core.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "scoring/score.h"

namespace {

using vmtime::scoring::ClockSample;
using vmtime::scoring::GuestSyncStatus;
using vmtime::scoring::HostReference;
using vmtime::scoring::LeapStatus;
using vmtime::scoring::Params;
using vmtime::scoring::ScoreResult;
using vmtime::scoring::SyncState;
using vmtime::scoring::VmInput;

constexpr int kVms = 10'000;
constexpr int kSamples = 64;
constexpr int64_t kSecond = 1'000'000'000;

struct Fleet {
  std::vector<std::vector<ClockSample>> histories;
  std::vector<VmInput> inputs;
};

Fleet MakeFleet(int vms) {
  Fleet f;
  f.histories.resize(vms);
  f.inputs.resize(vms);
  std::mt19937 rng(42);
  std::uniform_real_distribution<double> unit(0, 1);
  const int64_t now = 1'000'000 * kSecond;
  for (int v = 0; v < vms; ++v) {
    const double kind = unit(rng);
    const double drift = kind < 0.1 ? 400e-6 : (unit(rng) - 0.5) * 60e-6;
    const double start_offset = kind < 0.02 ? -480 : (unit(rng) - 0.5) * 0.01;
    int64_t mono = now - (kSamples * 15 + 3) * kSecond;
    int64_t real = 1'767'225'600 * kSecond + mono;
    int64_t guest = real + static_cast<int64_t>(start_offset * 1e9);
    auto& h = f.histories[v];
    h.reserve(kSamples);
    for (int i = 0; i < kSamples; ++i) {
      const int64_t dt = 15 * kSecond;
      mono += dt;
      real += dt;
      const bool stopped = kind >= 0.02 && kind < 0.03 && i > kSamples - 4;
      if (!stopped) guest += dt + static_cast<int64_t>(drift * static_cast<double>(dt));
      if (kind >= 0.03 && kind < 0.05 && i == kSamples / 2) guest += 2 * kSecond;  // step
      ClockSample s;
      s.host_mono_ns = mono;
      s.host_real_ns = real;
      s.guest_real_ns = guest + static_cast<int64_t>((unit(rng) - 0.5) * 1e6);  // 1 ms noise
      s.offset_s = static_cast<double>(s.guest_real_ns - s.host_real_ns) / 1e9;
      s.uncertainty_s = 0.0004;
      h.push_back(s);
    }
    VmInput& in = f.inputs[v];
    in.samples = h;
    in.running = true;
    in.agent_reachable = !(kind >= 0.05 && kind < 0.06);
    in.now_mono_ns = kind >= 0.05 && kind < 0.07 ? now + 600 * kSecond : now;
    in.poll_interval_s = 15;
    if (unit(rng) < 0.5) {
      GuestSyncStatus g;
      g.state = SyncState::kSynchronised;
      g.stratum = 3;
      g.leap = LeapStatus::kNormal;
      g.measured_mono_ns = now;
      in.guest = g;
    }
    HostReference host;
    host.state = SyncState::kSynchronised;
    host.stratum = 2;
    host.offset_s = 1e-5;
    host.root_distance_s = 0.003;
    in.host = host;
  }
  return f;
}

void BM_ScoreFleet(benchmark::State& state) {
  const int vms = static_cast<int>(state.range(0));
  const Fleet fleet = MakeFleet(vms);
  const Params params;
  std::vector<ScoreResult> results(vms);
  for (auto _ : state) {
    for (int v = 0; v < vms; ++v) results[v] = Score(fleet.inputs[v], params);
    benchmark::DoNotOptimize(results.data());
    benchmark::ClobberMemory();
  }
  // Seconds per VM: iteration time divided by the VM count.
  state.counters["per_vm"] = benchmark::Counter(
      vms, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["vms"] = vms;
}
BENCHMARK(BM_ScoreFleet)->Arg(kVms)->Unit(benchmark::kMillisecond);

// One VM in isolation (healthy, 64 samples): the per-call cost without
// cache effects of a large fleet.
void BM_ScoreOneVm(benchmark::State& state) {
  const Fleet fleet = MakeFleet(64);
  const Params params;
  int v = 0;
  for (auto _ : state) {
    ScoreResult r = Score(fleet.inputs[v], params);
    benchmark::DoNotOptimize(r);
    v = (v + 1) & 63;
  }
}
BENCHMARK(BM_ScoreOneVm)->Unit(benchmark::kNanosecond);

}  // namespace
