// The incremental gzip body of /metrics (exposition/gzip_body.h) and the
// metrics cache's background refresh:
// - through a sequence of snapshots (a few VMs changed, scattered or in a
//   run, one added, some removed, a renamed one, awkward label values,
//   component scores switched off, libvirt off, no VMs), the body always
//   inflates to exactly RenderText of that snapshot, and only the chunks
//   holding a changed VM are made anew;
// - what decides reuse is a seeded 128-bit digest of the chunk's keys: it
//   tells apart every one-bit change, length and block order of its
//   input, and a change that keeps the key's length (one ulp, two VMs'
//   values swapped) still remakes the chunk; the body keeps no per-VM
//   bytes beyond its compressed pieces (retained_bytes);
// - the cache's refresh thread makes the gzip body of each new snapshot
//   once a gzip scrape was seen, and nothing before.
#include "exporter/exposition/gzip_body.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "bench/fleet.h"
#include "exporter/exposition/metrics.h"
#include "exporter/exposition/metrics_cache.h"
#include "exporter/exposition/vm_metrics.h"

namespace vmtime {
namespace {

// The benchmark fleet with guest status on every third VM (so every per-VM
// family is present).
Snapshot Fleet(int n) {
  auto store = bench::FilledStore(bench::DefaultConfig(), n, 64);
  store->RecordRun({"libvirt", true, 0.5, bench::kEpochRealNs, ""});
  const int64_t now_mono_ns = bench::RoundMonoNs(63) + 5 * bench::kSecondNs;
  Snapshot s = *store->Build(now_mono_ns, bench::kEpochRealNs + now_mono_ns);
  for (size_t i = 0; i < s.vms.size(); i += 3) {
    GuestStatusObservation g;
    g.daemon = "chrony";
    g.status.state = scoring::SyncState::kSynchronised;
    g.status.stratum = 3;
    g.status.leap = scoring::LeapStatus::kNormal;
    s.vms[i].guest = std::make_shared<const GuestStatusObservation>(g);
  }
  return s;
}

// A new sample for VM `i`: what a harvest changes.
void Resample(Snapshot& s, size_t i, double offset_s) {
  VmView& vm = s.vms[i];
  vm.last_sample->offset_s = offset_s;
  vm.last_sample->host_real_ns += 15'000'000'000;
  vm.score.score = 50;
}

// Makes the body of `s`, checks it inflates to RenderText(s), returns the
// chunks made anew.
size_t MakeAndCheck(exposition::GzipBody& body, const Snapshot& s, const char* what) {
  auto packed = body.Make(s);
  EXPECT_TRUE(packed.ok()) << what;
  if (!packed.ok()) return 0;
  auto inflated = exposition::Gunzip(packed->Flatten());
  EXPECT_TRUE(inflated.ok()) << what << ": " << inflated.error().message;
  if (inflated.ok()) {
    EXPECT_TRUE(*inflated == exposition::RenderText(s)) << what;
  }
  return body.chunks_made();
}

TEST(GzipBody, InflatesToThePlainBodyAndRemakesOnlyChangedChunks) {
  exposition::GzipBody body(1);
  Snapshot s = Fleet(2000);
  {
    const size_t made = MakeAndCheck(body, s, "first");
    EXPECT_EQ(made, body.chunks()) << "first";
  }
  EXPECT_GT(body.chunks(), 2000 / (4 * exposition::GzipBody::kChunkVms));
  EXPECT_EQ(MakeAndCheck(body, s, "unchanged"), 0u);

  // The freshness age grows with every build but is not exported: no remake.
  for (VmView& vm : s.vms) vm.score.freshness_age_s += 1;
  EXPECT_EQ(MakeAndCheck(body, s, "older build"), 0u);

  Resample(s, 700, 0.25);
  EXPECT_EQ(MakeAndCheck(body, s, "one VM"), 1u);

  for (size_t i = 1000; i < 1100; ++i) Resample(s, i, 1e-3);
  const size_t run = MakeAndCheck(body, s, "a run of 100");
  EXPECT_GE(run, 1u);
  EXPECT_LE(run, 12u);
  EXPECT_LT(run, body.chunks() / 2);

  Resample(s, 3, -0.5);
  Resample(s, 1999, 7);
  EXPECT_LE(MakeAndCheck(body, s, "two scattered"), 2u);

  // -0 and 0 print differently: the key compares bits, not values.
  s.vms[5].last_sample->offset_s = 0.0;
  MakeAndCheck(body, s, "zero");
  s.vms[5].last_sample->offset_s = -0.0;
  EXPECT_EQ(MakeAndCheck(body, s, "negative zero"), 1u);

  VmView added = s.vms[10];
  added.name = "vm-00010-b\"quoted\\\n";
  added.uuid = "00000000-0000-0000-0000-00000000abcd";
  s.vms.insert(s.vms.begin() + 11, added);
  EXPECT_LE(MakeAndCheck(body, s, "one added"), 2u);

  s.vms.erase(s.vms.begin() + 500, s.vms.begin() + 510);
  EXPECT_LE(MakeAndCheck(body, s, "ten removed"), 3u);

  s.vms[42].name = s.vms[42].name + "-renamed";
  EXPECT_EQ(MakeAndCheck(body, s, "renamed"), 1u);

  s.vms[43].state = DomainState::kPaused;
  s.vms[43].score.reasons.insert(scoring::Reason::kStale);
  EXPECT_EQ(MakeAndCheck(body, s, "paused"), 1u);

  s.component_scores = false;
  {
    const size_t made = MakeAndCheck(body, s, "no component scores");
    EXPECT_EQ(made, body.chunks()) << "no component scores";
  }
  s.component_scores = true;
  {
    const size_t made = MakeAndCheck(body, s, "component scores again");
    EXPECT_EQ(made, body.chunks()) << "component scores again";
  }

  Snapshot off = s;
  off.libvirt_enabled = false;
  MakeAndCheck(body, off, "libvirt off");
  EXPECT_EQ(body.chunks(), 0u);
  Snapshot none = s;
  none.vms.clear();
  MakeAndCheck(body, none, "no VMs");
  MakeAndCheck(body, Snapshot{}, "empty snapshot");
  {
    const size_t made = MakeAndCheck(body, s, "back");
    EXPECT_EQ(made, body.chunks()) << "back";
  }
}

TEST(GzipBody, DuplicateUuidsStayCorrect) {
  exposition::GzipBody body(1);
  Snapshot s = Fleet(300);
  for (VmView& vm : s.vms) vm.uuid = "same";  // libvirt would not, but the body must still be right
  MakeAndCheck(body, s, "duplicates");
  Resample(s, 150, 3);
  MakeAndCheck(body, s, "duplicates, one changed");
}

TEST(GzipBody, KeyDigestTellsApartOneBitChangesLengthsAndOrder) {
  const exposition::GzipBody body(1);
  std::mt19937_64 random(7);
  std::string bytes(1000, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  const auto digest = [&](std::string_view b) {
    const auto d = body.KeyDigestOf(b);
    return std::pair(d.a, d.b);
  };
  EXPECT_EQ(digest(bytes), digest(std::string(bytes)));  // a function of the bytes only

  std::set<std::pair<uint64_t, uint64_t>> seen{digest(bytes)};
  for (size_t bit = 0; bit < 8 * bytes.size(); ++bit) {
    std::string flipped = bytes;
    flipped[bit / 8] = static_cast<char>(flipped[bit / 8] ^ (1 << (bit % 8)));
    EXPECT_TRUE(seen.insert(digest(flipped)).second) << "bit " << bit;
  }
  // Zero bytes of every length up to three blocks: the padding of the last
  // block must not hide the length.
  for (size_t n = 0; n <= 48; ++n) {
    EXPECT_TRUE(seen.insert(digest(std::string(n, '\0'))).second) << n << " zero bytes";
  }
  // The same blocks in another order (a chain, not a sum of blocks).
  std::string swapped = bytes;
  std::swap_ranges(swapped.begin(), swapped.begin() + 16, swapped.begin() + 16);
  EXPECT_NE(digest(swapped), digest(bytes));
  std::string rotated = bytes.substr(16, 64 * 16) + bytes.substr(0, 16);
  rotated += bytes.substr(rotated.size());
  EXPECT_NE(digest(rotated), digest(bytes));

  // Seeded per body: another body digests the same bytes differently.
  const exposition::GzipBody other(1);
  const auto d = other.KeyDigestOf(bytes);
  EXPECT_NE(std::pair(d.a, d.b), digest(bytes));
}

TEST(GzipBody, ChangesThatKeepTheKeyLengthRemakeTheChunk) {
  exposition::GzipBody body(1);
  Snapshot s = Fleet(1000);
  MakeAndCheck(body, s, "first");
  EXPECT_EQ(MakeAndCheck(body, s, "unchanged"), 0u);

  // One ulp: the key's bytes differ in one bit of one value.
  double& offset = s.vms[321].last_sample->offset_s;
  offset = std::nextafter(offset, 1e9);
  EXPECT_EQ(MakeAndCheck(body, s, "one ulp"), 1u);
  EXPECT_EQ(MakeAndCheck(body, s, "unchanged after one ulp"), 0u);

  // Two neighbours' offsets swapped: the same bytes in the chunk's key, in
  // another order.
  ASSERT_NE(s.vms[600].last_sample->offset_s, s.vms[601].last_sample->offset_s);
  std::swap(s.vms[600].last_sample->offset_s, s.vms[601].last_sample->offset_s);
  const size_t swapped = MakeAndCheck(body, s, "swapped");
  EXPECT_GE(swapped, 1u);
  EXPECT_LE(swapped, 2u);

  // The same change made twice in a row is made once, then reused.
  Resample(s, 900, 0.5);
  EXPECT_EQ(MakeAndCheck(body, s, "resampled"), 1u);
  EXPECT_EQ(MakeAndCheck(body, s, "resampled, again"), 0u);
}

TEST(GzipBody, KeepsNoPerVmBytesBeyondItsPieces) {
  exposition::GzipBody body(1);
  const Snapshot s = Fleet(2000);
  auto packed = body.Make(s);
  ASSERT_TRUE(packed.ok());
  // The pieces are the body less its host section and HELP/TYPE lines, so
  // they are most of it; beyond them a chunk costs its table entries (one
  // piece record per family, its digest, the uuid index), not its VMs'
  // keys (about 400 bytes per VM, 800 kB here).
  EXPECT_GE(body.retained_bytes(), packed->size() / 2);
  EXPECT_LE(body.retained_bytes(), packed->size() + body.chunks() * 2048);
  auto again = body.Make(s);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->Flatten() == packed->Flatten());
}

// The body refers to the pieces the GzipBody keeps; it does not copy them.
// A body already handed out keeps its bytes when later makes replace the
// pieces of changed chunks.
TEST(GzipBody, BodiesShareTheUnchangedPiecesAndOutliveTheirReplacement) {
  exposition::GzipBody body(1);
  Snapshot s = Fleet(2000);
  auto first = body.Make(s);
  ASSERT_TRUE(first.ok());
  const std::string first_bytes = first->Flatten();
  EXPECT_GT(first->parts().size(), body.chunks());
  Resample(s, 7, 0.25);
  auto second = body.Make(s);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(body.chunks_made(), 1u);
  std::set<const std::string*> before;
  for (const auto& part : first->parts()) before.insert(part.get());
  size_t shared = 0, shared_bytes = 0;
  for (const auto& part : second->parts()) {
    if (before.count(part.get()) != 0) ++shared, shared_bytes += part->size();
  }
  // Every piece of the unchanged chunks is the same text, not a copy: all
  // but the changed chunk's pieces, the host section, the HELP/TYPE lines
  // and the header and trailer.
  EXPECT_GE(shared, second->parts().size() - exposition::VmFamilies().size() * 2 - 3);
  EXPECT_GE(shared_bytes * 10, second->size() * 8);
  // The first body is unchanged by the second make and still inflates to
  // the first snapshot's text.
  EXPECT_EQ(first->Flatten(), first_bytes);
  EXPECT_EQ(*exposition::Gunzip(second->Flatten()), exposition::RenderText(s));
  // The size is the parts' sum.
  size_t sum = 0;
  for (const auto& part : second->parts()) sum += part->size();
  EXPECT_EQ(second->size(), sum);
}

TEST(GzipBody, RefusesABadLevel) {
  exposition::GzipBody body(12);
  EXPECT_FALSE(body.Make(Fleet(3)).ok());
}

// Waits (bounded, real time: the refresh is a thread) until `done`.
template <typename F>
bool WaitFor(F done) {
  for (int i = 0; i < 2000 && !done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

TEST(MetricsCache, BackgroundRefreshMakesTheGzipBodyOfNewSnapshots) {
  SnapshotHolder holder;
  Snapshot s = Fleet(500);
  holder.Set(std::make_shared<const Snapshot>(s));
  exposition::MetricsCache cache(holder, 1, /*refresh_in_background=*/true);

  // Nobody asked for gzip yet: a publish makes nothing.
  Resample(s, 1, 0.5);
  holder.Set(std::make_shared<const Snapshot>(s));
  ASSERT_TRUE(WaitFor([&] { return cache.refresh_wakeups() >= 1; }));
  EXPECT_EQ(cache.compressions(), 0u);

  ASSERT_TRUE(cache.Get(true).ok());
  EXPECT_EQ(cache.compressions(), 1u);
  Resample(s, 2, 0.75);
  holder.Set(std::make_shared<const Snapshot>(s));
  ASSERT_TRUE(WaitFor([&] { return cache.background_compressions() >= 1; }));
  const uint64_t made = cache.compressions();
  auto packed = cache.Get(true);  // served, not made
  ASSERT_TRUE(packed.ok());
  EXPECT_EQ(cache.compressions(), made);
  EXPECT_EQ(cache.last_gzip_chunks().second, 1u);  // only VM 2's chunk
  EXPECT_EQ(*exposition::Gunzip((*packed)->Flatten()), exposition::RenderText(s));

  // While the refresh runs, a scrape never makes a body: it gets the
  // current snapshot's or, until that is made, the one before.
  const std::string before = exposition::RenderText(s);
  const uint64_t background_before = cache.background_compressions();  // before the publish
  Resample(s, 3, 0.125);
  holder.Set(std::make_shared<const Snapshot>(s));
  auto served = cache.Get(true);
  ASSERT_TRUE(served.ok());
  const std::string text = *exposition::Gunzip((*served)->Flatten());
  EXPECT_TRUE(text == before || text == exposition::RenderText(s));
  ASSERT_TRUE(WaitFor([&] { return cache.background_compressions() > background_before; }));
  EXPECT_EQ(cache.compressions(), made + 1);  // the refresh's, none by Get
  EXPECT_EQ(*exposition::Gunzip((*cache.Get(true))->Flatten()), exposition::RenderText(s));
}

}  // namespace
}  // namespace vmtime
