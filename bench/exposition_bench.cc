// Cost of rendering a snapshot of a large fleet (bench/fleet.h describes it;
// full 64-sample histories, host chronyd known, so every per-VM series is
// present):
// - BM_RenderFamilies: the prometheus-cpp MetricFamily vector of the whole
//   exposition (what SnapshotCollectable::Collect returns).
// - BM_RenderTextOld: the /metrics text as it was made before the writer:
//   RenderFamilies + prometheus-cpp's TextSerializer.
// - BM_RenderText: the /metrics text now (text_writer.h, vm_metrics.h);
//   BM_RenderTextNoComponents with metrics.component_scores off.
// - BM_SerializeFamilies: the prometheus-cpp serialisation alone.
// - BM_Gzip/<vms>/<level>: zlib gzip of the /metrics text at a level.
// - BM_CachedScrape: MetricsCache::Get of an already rendered snapshot
//   (what every scrape after the first of a snapshot costs before I/O).
// - BM_RenderJson: /api/v1/targets, the nlohmann::json tree and its dump().
// - BM_RenderStatusPage: the HTML status page at "/".
// Each reports time per op, per VM (counter "per_vm", seconds) and the size of
// its output ("bytes", "bytes_per_vm"; families count "series").
#include <benchmark/benchmark.h>
#include <prometheus/text_serializer.h>

#include <string>

#include "bench/fleet.h"
#include "exporter/exposition/metrics.h"
#include "exporter/exposition/metrics_cache.h"
#include "exporter/exposition/views.h"

namespace vmtime::bench {
namespace {

constexpr int kHistory = 64;

std::shared_ptr<const Snapshot> FleetSnapshot(int n) {
  const Config config = DefaultConfig();
  auto store = FilledStore(config, n, kHistory);
  CollectorStatus run;
  run.name = "libvirt";
  run.success = true;
  run.duration_s = 0.5;
  run.last_run_real_ns = kEpochRealNs + RoundMonoNs(kHistory - 1);
  store->RecordRun(run);
  const int64_t now_mono_ns = RoundMonoNs(kHistory - 1) + 5 * kSecondNs;
  return store->Build(now_mono_ns, kEpochRealNs + now_mono_ns);
}

void Report(benchmark::State& state, int n, size_t bytes) {
  state.counters["vms"] = n;
  state.counters["per_vm"] = benchmark::Counter(
      n, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  if (bytes > 0) {
    state.counters["bytes"] = static_cast<double>(bytes);
    state.counters["bytes_per_vm"] = static_cast<double>(bytes) / n;
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  }
}

void BM_RenderFamilies(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto snap = FleetSnapshot(n);
  size_t series = 0;
  for (auto _ : state) {
    auto families = exposition::RenderFamilies(*snap);
    series = 0;
    for (const auto& f : families) series += f.metric.size();
    benchmark::DoNotOptimize(families);
  }
  Report(state, n, 0);
  state.counters["series"] = static_cast<double>(series);
}
BENCHMARK(BM_RenderFamilies)->Arg(1'000)->Arg(10'000)->Unit(benchmark::kMillisecond);

void BM_RenderTextOld(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto snap = FleetSnapshot(n);
  size_t bytes = 0;
  for (auto _ : state) {
    std::string text = prometheus::TextSerializer().Serialize(exposition::RenderFamilies(*snap));
    bytes = text.size();
    benchmark::DoNotOptimize(text);
  }
  Report(state, n, bytes);
}
BENCHMARK(BM_RenderTextOld)->Arg(1'000)->Arg(10'000)->Unit(benchmark::kMillisecond);

void RenderTextBench(benchmark::State& state, bool component_scores) {
  const int n = static_cast<int>(state.range(0));
  auto fleet = FleetSnapshot(n);
  Snapshot snap = *fleet;
  snap.component_scores = component_scores;
  size_t bytes = 0, series = 0;
  for (auto _ : state) {
    std::string text = exposition::RenderText(snap);
    bytes = text.size();
    benchmark::DoNotOptimize(text);
    series = 0;
    for (size_t p = 0; p < text.size(); p = text.find('\n', p) + 1) series += text[p] != '#';
  }
  Report(state, n, bytes);
  state.counters["series"] = static_cast<double>(series);
}

void BM_RenderText(benchmark::State& state) { RenderTextBench(state, true); }
BENCHMARK(BM_RenderText)->Arg(1'000)->Arg(10'000)->Unit(benchmark::kMillisecond);

void BM_RenderTextNoComponents(benchmark::State& state) { RenderTextBench(state, false); }
BENCHMARK(BM_RenderTextNoComponents)->Arg(10'000)->Unit(benchmark::kMillisecond);

void BM_Gzip(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int level = static_cast<int>(state.range(1));
  const std::string text = exposition::RenderText(*FleetSnapshot(n));
  size_t packed_bytes = 0;
  for (auto _ : state) {
    auto packed = exposition::Gzip(text, level);
    packed_bytes = packed.ok() ? packed->size() : 0;
    benchmark::DoNotOptimize(packed);
  }
  Report(state, n, text.size());
  state.counters["gzip_bytes"] = static_cast<double>(packed_bytes);
  state.counters["ratio"] = static_cast<double>(text.size()) / static_cast<double>(packed_bytes);
}
BENCHMARK(BM_Gzip)
    ->Args({10'000, 1})
    ->Args({10'000, 3})
    ->Args({10'000, 6})
    ->Args({10'000, 9})
    ->Unit(benchmark::kMillisecond);

void BM_CachedScrape(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  SnapshotHolder holder;
  holder.Set(FleetSnapshot(n));
  exposition::MetricsCache cache(holder);
  (void)cache.Get(/*gzip=*/true);  // the first scrape renders and compresses
  size_t bytes = 0;
  for (auto _ : state) {
    auto body = cache.Get(/*gzip=*/true);
    bytes = body.ok() ? (*body)->size() : 0;
    benchmark::DoNotOptimize(body);
  }
  Report(state, n, 0);
  state.counters["gzip_bytes"] = static_cast<double>(bytes);
  state.counters["renders"] = static_cast<double>(cache.renders());
}
BENCHMARK(BM_CachedScrape)->Arg(10'000)->Unit(benchmark::kMicrosecond);

// The prometheus-cpp text serialisation alone, of families built once: the
// part of BM_RenderText that is not BM_RenderFamilies.
void BM_SerializeFamilies(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto snap = FleetSnapshot(n);
  const auto families = exposition::RenderFamilies(*snap);
  const prometheus::TextSerializer serializer;
  size_t bytes = 0;
  for (auto _ : state) {
    std::string text = serializer.Serialize(families);
    bytes = text.size();
    benchmark::DoNotOptimize(text);
  }
  Report(state, n, bytes);
}
BENCHMARK(BM_SerializeFamilies)->Arg(1'000)->Arg(10'000)->Unit(benchmark::kMillisecond);

void BM_RenderJson(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto snap = FleetSnapshot(n);
  size_t bytes = 0;
  for (auto _ : state) {
    std::string text = exposition::RenderJson(*snap).dump();
    bytes = text.size();
    benchmark::DoNotOptimize(text);
  }
  Report(state, n, bytes);
}
BENCHMARK(BM_RenderJson)->Arg(1'000)->Arg(10'000)->Unit(benchmark::kMillisecond);

void BM_RenderStatusPage(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto snap = FleetSnapshot(n);
  size_t bytes = 0;
  for (auto _ : state) {
    std::string html = exposition::RenderStatusPage(*snap, "/metrics");
    bytes = html.size();
    benchmark::DoNotOptimize(html);
  }
  Report(state, n, bytes);
}
BENCHMARK(BM_RenderStatusPage)->Arg(1'000)->Arg(10'000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace vmtime::bench
