// The /metrics text writer, the per-snapshot body cache with its gzip form,
// and Accept-Encoding parsing:
// - the writer's text is byte for byte what prometheus-cpp's TextSerializer
//   made of the same snapshot's MetricFamily values (the old /metrics path),
//   on the benchmark fleet with every per-VM family present, and on values
//   and label values chosen to be awkward (NaN, infinities, escapes);
// - the cache renders once per snapshot however many readers ask at once,
//   its gzip body inflates to the plain body, and PeekSize (HEAD) renders
//   nothing.
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <latch>
#include <limits>
#include <random>
#include <set>
#include <thread>

#include "bench/fleet.h"
#include "exporter/exposition/metrics.h"
#include "exporter/exposition/metrics_cache.h"
#include "exporter/exposition/text_writer.h"

namespace vmtime {
namespace {

std::string OldText(const Snapshot& s) {
  return prometheus::TextSerializer().Serialize(exposition::RenderFamilies(s));
}

// The benchmark fleet (bench/fleet.h, full histories, host chronyd), plus
// what the fleet does not have on its own so that every per-VM family is
// written: guest status (synchronised, stratum, leap, source, an error) on
// every third VM, every component measured on every fifth, remediation
// counts on every seventh.
Snapshot FullFleet(int n) {
  auto store = bench::FilledStore(bench::DefaultConfig(), n, 64);
  store->RecordRun({"libvirt", true, 0.5, bench::kEpochRealNs, ""});
  const int64_t now_mono_ns = bench::RoundMonoNs(63) + 5 * bench::kSecondNs;
  Snapshot s = *store->Build(now_mono_ns, bench::kEpochRealNs + now_mono_ns);
  for (size_t i = 0; i < s.vms.size(); ++i) {
    VmView& vm = s.vms[i];
    if (i % 3 == 0) {
      GuestStatusObservation g;
      g.daemon = i % 2 ? "chrony" : "ntpd";
      g.status.state = scoring::SyncState::kSynchronised;
      g.status.stratum = 3;
      g.status.leap = scoring::LeapStatus::kNormal;
      if (i % 9 == 0) g.error = "timeout: chronyc -c tracking: still running at the deadline";
      vm.guest = std::make_shared<const GuestStatusObservation>(g);
    }
    if (i % 5 == 0) vm.score.measured.fill(true);
    if (i % 7 == 0) {
      vm.remediations_total = std::make_shared<RemediationCounts>(RemediationCounts{1, 0, 2, 0, 0});
    }
  }
  return s;
}

TEST(MetricsWriter, ByteIdenticalToTextSerializerOnTheBenchFleet) {
  const Snapshot s = FullFleet(1000);
  const std::string text = exposition::RenderText(s);
  for (const auto& f : exposition::VmFamilies()) {
    EXPECT_NE(text.find("# TYPE " + std::string(f.name) + " "), std::string::npos)
        << f.name << " missing: the test would not cover it";
  }
  ASSERT_GT(text.size(), 1'000'000u);
  const std::string old = OldText(s);
  ASSERT_EQ(text.size(), old.size());
  EXPECT_TRUE(text == old) << "first difference at byte "
                           << std::mismatch(text.begin(), text.end(), old.begin()).first -
                                  text.begin();
}

TEST(MetricsWriter, EveryFamilyOnceWithItsSamplesTogether) {
  const std::string text = exposition::RenderText(FullFleet(200));
  std::set<std::string> seen;
  std::string current;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t eol = text.find('\n', pos);
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.starts_with("# TYPE ")) {
      current = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(seen.insert(current).second) << "family twice: " << current;
    } else if (!line.starts_with("#")) {
      const std::string name = line.substr(0, line.find_first_of("{ "));
      EXPECT_EQ(name, current) << "sample outside its family: " << line;
    }
  }
  EXPECT_GT(seen.size(), 30u);
}

// Values and label values chosen to be awkward, through AppendFamilies and
// the per-VM writer, against TextSerializer.
TEST(MetricsWriter, ValuesAndEscapesLikeTextSerializer) {
  std::vector<double> values = {0.0,
                                -0.0,
                                1,
                                -1,
                                1764000190,
                                0.1,
                                1.2e-5,
                                20.0 / 3,
                                1e16,
                                123456789012345678.0,
                                1e21,
                                5e-324,
                                std::numeric_limits<double>::max(),
                                std::numeric_limits<double>::quiet_NaN(),
                                std::numeric_limits<double>::infinity(),
                                -std::numeric_limits<double>::infinity()};
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    const uint64_t bits = rng();
    double d;
    std::memcpy(&d, &bits, sizeof d);
    values.push_back(d);
    values.push_back(std::uniform_real_distribution<double>(-1e3, 1e3)(rng));
  }
  prometheus::MetricFamily gauge;
  gauge.name = "x_value";
  gauge.help = "Help with \"quotes\" and \\ as given.";
  gauge.type = prometheus::MetricType::Gauge;
  for (size_t i = 0; i < values.size(); ++i) {
    prometheus::ClientMetric m;
    m.gauge.value = values[i];
    if (i % 2) m.label = {{"a", "q\"b\\s\nn\tt"}, {"b", ""}};
    gauge.metric.push_back(m);
  }
  prometheus::MetricFamily counter;
  counter.name = "x_total";
  counter.type = prometheus::MetricType::Counter;
  prometheus::ClientMetric c;
  c.counter.value = 3;
  counter.metric = {c};
  const std::vector<prometheus::MetricFamily> families = {gauge, counter};
  std::string got;
  exposition::AppendFamilies(got, families);
  EXPECT_EQ(got, prometheus::TextSerializer().Serialize(families));

  Snapshot s;
  s.libvirt_enabled = true;
  VmView vm;
  vm.name = "evil \"name\" \\ with\nnewline";
  vm.uuid = "u\\\"";
  vm.score.score = std::numeric_limits<double>::quiet_NaN();
  vm.utc_offset_s = std::numeric_limits<double>::infinity();
  vm.last_sample = scoring::ClockSample{};
  vm.last_sample->offset_s = -std::numeric_limits<double>::infinity();
  s.vms = {vm};
  const std::string text = exposition::RenderText(s);
  EXPECT_EQ(text, OldText(s));
  EXPECT_NE(text.find("vmtime_vm_health_score{domain=\"evil \\\"name\\\" \\\\ with\\nnewline\","
                      "uuid=\"u\\\\\\\"\"} Nan\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("vmtime_vm_clock_utc_offset_seconds{domain=\"evil"), std::string::npos);
  EXPECT_NE(text.find("\"} +Inf\n"), std::string::npos);
  EXPECT_NE(text.find("\"} -Inf\n"), std::string::npos);
}

TEST(MetricsWriter, ComponentScoresCanBeLeftOut) {
  Snapshot s = FullFleet(50);
  const std::string with = exposition::RenderText(s);
  s.component_scores = false;
  const std::string without = exposition::RenderText(s);
  EXPECT_NE(with.find("vmtime_vm_health_component_score{"), std::string::npos);
  EXPECT_EQ(without.find("vmtime_vm_health_component_score"), std::string::npos);
  EXPECT_EQ(without, OldText(s));
  // Nothing else changes: removing the family's lines from `with` gives `without`.
  std::string stripped;
  size_t pos = 0;
  while (pos < with.size()) {
    const size_t eol = with.find('\n', pos) + 1;
    const std::string_view line(with.data() + pos, eol - pos);
    if (line.find("vmtime_vm_health_component_score") == std::string_view::npos) {
      stripped += line;
    }
    pos = eol;
  }
  EXPECT_EQ(stripped, without);
}

// Config metrics.component_scores reaches the snapshot through the store,
// also on a reload (Store::SetConfig).
TEST(MetricsWriter, ComponentScoresFollowTheConfig) {
  Config config = bench::DefaultConfig();
  auto store = bench::FilledStore(config, 3, 4);
  EXPECT_TRUE(store->Build(0, 0)->component_scores);
  EXPECT_NE(exposition::RenderText(*store->Build(0, 0)).find("vmtime_vm_health_component_score{"),
            std::string::npos);
  config.metrics.component_scores = false;
  store->SetConfig(config);
  const auto snap = store->Build(0, 0);
  EXPECT_FALSE(snap->component_scores);
  EXPECT_EQ(exposition::RenderText(*snap).find("vmtime_vm_health_component_score"),
            std::string::npos);
}

std::shared_ptr<const Snapshot> Shared(Snapshot s) {
  return std::make_shared<const Snapshot>(std::move(s));
}

TEST(MetricsCache, OneRenderPerSnapshotUnderConcurrentReaders) {
  SnapshotHolder holder;
  holder.Set(Shared(FullFleet(1000)));
  exposition::MetricsCache cache(holder);
  constexpr int kReaders = 8;
  constexpr int kRequestsEach = 20;
  std::latch start(kReaders);
  std::atomic<int> failures{0};
  std::vector<std::set<const exposition::ResponseBody*>> bodies(kReaders);
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      start.arrive_and_wait();  // all ask at once: the first render is shared
      for (int i = 0; i < kRequestsEach; ++i) {
        auto body = cache.Get(/*gzip=*/(r + i) % 2 == 0);
        if (!body.ok()) {
          ++failures;
          continue;
        }
        bodies[r].insert(body->get());
      }
    });
  }
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(cache.renders(), 1u);
  EXPECT_EQ(cache.compressions(), 1u);
  std::set<const exposition::ResponseBody*> all;
  for (const auto& b : bodies) all.insert(b.begin(), b.end());
  EXPECT_EQ(all.size(), 2u) << "one plain and one gzip body shared by every reader";

  // A new snapshot: rendered once more, on its first request.
  Snapshot next = FullFleet(10);
  holder.Set(Shared(next));
  auto plain = cache.Get(false);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(cache.renders(), 2u);
  EXPECT_EQ((*plain)->Flatten(), exposition::RenderText(next));
  ASSERT_TRUE(cache.Get(false).ok());
  EXPECT_EQ(cache.renders(), 2u);
}

TEST(MetricsCache, GzipBodyInflatesToThePlainBody) {
  SnapshotHolder holder;
  holder.Set(Shared(FullFleet(300)));
  exposition::MetricsCache cache(holder);
  auto packed = cache.Get(true);
  auto plain = cache.Get(false);
  ASSERT_TRUE(packed.ok() && plain.ok());
  const std::string gz = (*packed)->Flatten();
  ASSERT_GE(gz.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);  // gzip magic
  EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
  EXPECT_EQ((*packed)->size(), gz.size());
  EXPECT_LT((*packed)->size() * 5, (*plain)->size());
  ASSERT_EQ((*plain)->parts().size(), 1u);  // the plain text is one part
  auto inflated = exposition::Gunzip(gz);
  ASSERT_TRUE(inflated.ok()) << inflated.error().message;
  EXPECT_TRUE(*inflated == (*plain)->Flatten());
  EXPECT_EQ(cache.renders(), 1u);
}

TEST(MetricsCache, PeekSizeRendersNothing) {
  SnapshotHolder holder;
  holder.Set(Shared(FullFleet(20)));
  exposition::MetricsCache cache(holder);
  EXPECT_FALSE(cache.PeekSize(false).has_value());
  EXPECT_FALSE(cache.PeekSize(true).has_value());
  EXPECT_EQ(cache.renders(), 0u);
  auto plain = cache.Get(false);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(cache.PeekSize(false), (*plain)->size());
  EXPECT_FALSE(cache.PeekSize(true).has_value());  // gzip not made yet
  EXPECT_EQ(cache.compressions(), 0u);
  holder.Set(Shared(FullFleet(21)));
  EXPECT_FALSE(cache.PeekSize(false).has_value());  // the new snapshot is not rendered
  EXPECT_EQ(cache.renders(), 1u);
}

TEST(Gzip, RoundTripsAtEveryLevelAndRejectsGarbage) {
  const std::string text = exposition::RenderText(FullFleet(30));
  for (int level = 0; level <= 9; ++level) {
    auto packed = exposition::Gzip(text, level);
    ASSERT_TRUE(packed.ok()) << level;
    auto back = exposition::Gunzip(*packed);
    ASSERT_TRUE(back.ok()) << level;
    EXPECT_EQ(*back, text) << level;
  }
  EXPECT_TRUE(exposition::Gzip("", 1).ok());
  EXPECT_EQ(*exposition::Gunzip(*exposition::Gzip("", 1)), "");
  EXPECT_FALSE(exposition::Gzip("x", 12).ok());
  EXPECT_FALSE(exposition::Gunzip("not gzip at all").ok());
  auto packed = exposition::Gzip(text, 1);
  EXPECT_FALSE(exposition::Gunzip(packed->substr(0, packed->size() / 2)).ok());  // truncated
}

TEST(AcceptEncoding, GzipWithQValues) {
  using exposition::AcceptsGzip;
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("GZip"));
  EXPECT_TRUE(AcceptsGzip("x-gzip"));
  EXPECT_TRUE(AcceptsGzip("gzip, deflate, br"));  // Prometheus, browsers
  EXPECT_TRUE(AcceptsGzip("deflate , gzip ;q=0.5"));
  EXPECT_TRUE(AcceptsGzip("gzip;q=1"));
  EXPECT_TRUE(AcceptsGzip("gzip;q=1.000"));
  EXPECT_TRUE(AcceptsGzip("gzip; Q=0.001"));
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_TRUE(AcceptsGzip("identity;q=0.5, *;q=0.1"));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("identity"));
  EXPECT_FALSE(AcceptsGzip("deflate, br"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0.000"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0, *"));  // named with 0 beats the wildcard
  EXPECT_FALSE(AcceptsGzip("*;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzipx, xgzip"));
  // Malformed q-values: not acceptable (the plain body always is).
  EXPECT_FALSE(AcceptsGzip("gzip;q=2"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=1.5"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0.0001"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=abc"));
  EXPECT_FALSE(AcceptsGzip("gzip;q="));
  EXPECT_FALSE(AcceptsGzip("gzip;q=-1"));
  EXPECT_TRUE(AcceptsGzip("gzip;q=junk, gzip"));  // listed twice: any acceptable one counts
  EXPECT_TRUE(AcceptsGzip("gzip;level=9"));       // other parameters are ignored
}

}  // namespace
}  // namespace vmtime
