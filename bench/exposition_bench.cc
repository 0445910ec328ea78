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
// - BM_PublishCycle/<vms>/<mode>/<order>/<chunk VMs>: one 15 s scrape
//   interval of a 10,000-VM exporter whose snapshot is republished 36 times
//   (the harvest rate measured by publish_bench with 1 ms agent calls: about
//   4 per second while a round lasts 9 s), each publish carrying new
//   samples for the next 1/36 of the VMs (order 0: in name order, as the
//   agent scheduler queues them; order 1: a fixed random order), then one
//   gzip scrape. Mode 0 is the cache before this change (the scrape renders
//   and gzips the whole text), mode 1 the incremental gzip body made by the
//   scrape, mode 2 the shipped behaviour (the background refresh makes the
//   gzip body of every publish; the scrape is served). Counters: CPU on the
//   scrape path per scrape (scrape_ms), CPU per interval (interval_ms) and
//   as a share of one core at one scrape per 15 s (core_pct). CPU is thread
//   CPU time of the calls made (snapshot copies, the poller's part, are
//   not counted).
// - BM_RenderJson: /api/v1/targets, the nlohmann::json tree and its dump().
// - BM_RenderStatusPage: the HTML status page at "/".
// Each reports time per op, per VM (counter "per_vm", seconds) and the size of
// its output ("bytes", "bytes_per_vm"; families count "series").
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <prometheus/text_serializer.h>
#include <time.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "bench/fleet.h"
#include "exporter/exposition/gzip_body.h"
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

double ThreadCpuS() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void BM_PublishCycle(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int mode = static_cast<int>(state.range(1));
  const bool scattered = state.range(2) != 0;
  const auto chunk_vms = static_cast<size_t>(state.range(3));
  constexpr int kPublishes = 36;
  Snapshot snap = *FleetSnapshot(n);
  std::vector<size_t> order(static_cast<size_t>(n));
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (scattered) std::shuffle(order.begin(), order.end(), std::mt19937(42));
  SnapshotHolder holder;
  holder.Set(std::make_shared<const Snapshot>(snap));
  exposition::MetricsCache cache(holder, exposition::kGzipLevel, false, chunk_vms);
  if (mode != 0 && !cache.Get(true).ok()) state.SkipWithError("gzip failed");  // warm
  double scrape_s = 0, interval_s = 0;
  size_t bytes = 0, sample = 0;
  int round = 64;
  for (auto _ : state) {
    double cpu_s = 0;
    for (int p = 0; p < kPublishes; ++p) {
      const size_t per = order.size() / kPublishes + 1;
      for (size_t k = 0; k < per && sample < order.size(); ++k, ++sample) {
        VmView& vm = snap.vms[order[sample]];
        if (!vm.last_sample) continue;
        vm.last_sample->offset_s += 1e-6 * static_cast<double>(round % 7);
        vm.last_sample->host_real_ns += 15 * kSecondNs;
        vm.rtt_s = 0.0008 + 1e-6 * static_cast<double>(round % 5);
        vm.score.score = std::max(0.0, vm.score.score - 0.01);
      }
      if (sample >= order.size()) sample = 0, ++round;
      holder.Set(std::make_shared<const Snapshot>(snap));
      if (mode == 2) {  // what the background refresh does on a publish
        const double t0 = ThreadCpuS();
        benchmark::DoNotOptimize(cache.Get(true));
        cpu_s += ThreadCpuS() - t0;
      }
    }
    const double t0 = ThreadCpuS();
    if (mode == 0) {  // before: the first gzip scrape of a snapshot
      auto packed = exposition::Gzip(exposition::RenderText(snap), exposition::kGzipLevel);
      bytes = packed->size();
    } else {
      auto packed = cache.Get(true);
      bytes = (*packed)->size();
    }
    const double scrape = ThreadCpuS() - t0;
    scrape_s += scrape;
    interval_s += cpu_s + scrape;
    state.SetIterationTime(cpu_s + scrape);
  }
  const auto iterations = static_cast<double>(state.iterations());
  state.counters["scrape_ms"] = scrape_s / iterations * 1e3;
  state.counters["interval_ms"] = interval_s / iterations * 1e3;
  state.counters["core_pct"] = interval_s / iterations / 15.0 * 100;
  state.counters["gzip_bytes"] = static_cast<double>(bytes);
  const auto [chunks, made] = cache.last_gzip_chunks();
  state.counters["chunks"] = static_cast<double>(chunks);
}
BENCHMARK(BM_PublishCycle)
    ->ArgNames({"vms", "mode", "scattered", "chunk"})
    ->Args({10'000, 0, 0, 64})
    ->Args({10'000, 1, 0, 64})
    ->Args({10'000, 2, 0, 64})
    ->Args({10'000, 2, 1, 64})
    ->Args({10'000, 2, 0, 16})
    ->Args({10'000, 2, 0, 256})
    ->Args({10'000, 2, 1, 16})
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// The fixed part of a new snapshot's gzip body: GzipBody::Make of a
// snapshot in which nothing changed (keys of every VM, compare, assemble),
// with the heap bytes the GzipBody keeps between makes (retained_bytes,
// retained_per_vm; malloc_kept_bytes: the same by malloc's count) and the size and parts of
// the body it returns (body_bytes, body_parts), the exposition keys alone, and their digest
// alone (BM_KeyDigest). Bytes malloc has handed out and not had back (all arenas, mmapped blocks
// included).
size_t HeapInUseBytes() {
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
}

void BM_GzipBodyUnchanged(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto snap = FleetSnapshot(n);
  const size_t heap_before = HeapInUseBytes();
  exposition::GzipBody body(exposition::kGzipLevel);
  if (!body.Make(*snap).ok()) state.SkipWithError("gzip failed");
  size_t body_bytes = 0, body_parts = 0;
  for (auto _ : state) {
    auto made = body.Make(*snap);
    if (made.ok()) body_bytes = made->size(), body_parts = made->parts().size();
    benchmark::DoNotOptimize(made);
  }
  Report(state, n, 0);
  // The body as made (kept by the metrics cache as it is): its bytes, and
  // the parts it refers to (response_body.h).
  state.counters["body_bytes"] = static_cast<double>(body_bytes);
  state.counters["body_parts"] = static_cast<double>(body_parts);
  // What the body keeps between makes (GzipBody::retained_bytes).
  state.counters["retained_bytes"] = static_cast<double>(body.retained_bytes());
  state.counters["retained_per_vm"] = static_cast<double>(body.retained_bytes()) / n;
  // The same by malloc's count (no body returned is alive here): with
  // malloc's per-block overhead and zlib's deflate state.
  state.counters["malloc_kept_bytes"] =
      static_cast<double>(HeapInUseBytes()) - static_cast<double>(heap_before);
}
BENCHMARK(BM_GzipBodyUnchanged)->Arg(10'000)->Unit(benchmark::kMillisecond);

void BM_ExpositionKeys(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto snap = FleetSnapshot(n);
  std::string key;
  for (auto _ : state) {
    for (const VmView& vm : snap->vms) {
      key.clear();
      exposition::AppendVmExpositionKey(vm, true, key);
    }
    benchmark::DoNotOptimize(key);
  }
  Report(state, n, key.size() * static_cast<size_t>(n));
}
BENCHMARK(BM_ExpositionKeys)->Arg(10'000)->Unit(benchmark::kMillisecond);

// The digest that decides a chunk's reuse (GzipBody::KeyDigestOf) of the
// keys of every VM, in chunks of kChunkVms VMs: what the digest adds to
// every make beyond BM_ExpositionKeys.
void BM_KeyDigest(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto snap = FleetSnapshot(n);
  std::vector<std::string> chunks;
  for (size_t i = 0; i < snap->vms.size(); ++i) {
    if (i % exposition::GzipBody::kChunkVms == 0) chunks.emplace_back(1, '\1');
    exposition::AppendVmExpositionKey(snap->vms[i], true, chunks.back());
  }
  size_t bytes = 0;
  for (const std::string& c : chunks) bytes += c.size();
  const exposition::GzipBody body(exposition::kGzipLevel);
  for (auto _ : state) {
    for (const std::string& c : chunks) benchmark::DoNotOptimize(body.KeyDigestOf(c));
  }
  Report(state, n, bytes);
}
BENCHMARK(BM_KeyDigest)->Arg(10'000)->Unit(benchmark::kMillisecond);

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
