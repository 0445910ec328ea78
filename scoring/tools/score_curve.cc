// vmtime_score_curve: prints the health score as a function of |offset| or of
// drift, computed by the real scoring library with default Params, as
// whitespace-separated columns for gnuplot (scripts/plot-scoring).
//
// Usage: vmtime_score_curve offset|drift
//   offset: |offset| in seconds (guest - host, constant over a steady
//           64-sample history), score with guest and host synchronised,
//           score without the optional guest/host status, offset component.
//   drift:  drift in ppm (newest offset 0), the same two scores, drift
//           component.
// Fixed synthetic timestamps: no clock is read.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <vector>

#include "scoring/score.h"

namespace {

using vmtime::scoring::ClockSample;
using vmtime::scoring::Component;
using vmtime::scoring::GuestSyncStatus;
using vmtime::scoring::HostReference;
using vmtime::scoring::LeapStatus;
using vmtime::scoring::Params;
using vmtime::scoring::ScoreResult;
using vmtime::scoring::SyncState;
using vmtime::scoring::VmInput;

constexpr int kSamples = 64;
constexpr int64_t kIntervalNs = 15'000'000'000;               // 15 s polls
constexpr int64_t kMonoOriginNs = 1'000'000'000'000;          // arbitrary boot-relative origin
constexpr int64_t kRealOriginNs = 1'767'225'600'000'000'000;  // 2026-01-01T00:00:00Z

// A steady history whose offset is `offset_at_last_s + drift * (t - t_last)`.
std::vector<ClockSample> History(double offset_at_last_s, double drift_ratio) {
  std::vector<ClockSample> out;
  out.reserve(kSamples);
  for (int i = 0; i < kSamples; ++i) {
    ClockSample s;
    s.host_mono_ns = kMonoOriginNs + i * kIntervalNs;
    s.host_real_ns = kRealOriginNs + i * kIntervalNs;
    const double since_last_s = static_cast<double>((i - (kSamples - 1)) * kIntervalNs) * 1e-9;
    s.offset_s = offset_at_last_s + drift_ratio * since_last_s;
    s.guest_real_ns = s.host_real_ns + static_cast<int64_t>(std::llround(s.offset_s * 1e9));
    s.uncertainty_s = 0.0004;
    out.push_back(s);
  }
  return out;
}

// Scores `samples` twice: with synchronised guest and host, and without them.
void Row(double x, const std::vector<ClockSample>& samples, Component component,
         const Params& params) {
  VmInput in;
  in.samples = samples;
  in.running = true;
  in.agent_reachable = true;
  in.now_mono_ns = samples.back().host_mono_ns + 1'000'000'000;
  in.poll_interval_s = 15;
  const ScoreResult bare = Score(in, params);
  GuestSyncStatus guest;
  guest.state = SyncState::kSynchronised;
  guest.stratum = 3;
  guest.leap = LeapStatus::kNormal;
  guest.measured_mono_ns = in.now_mono_ns;
  HostReference host;
  host.state = SyncState::kSynchronised;
  host.stratum = 2;
  host.offset_s = 0;
  in.guest = guest;
  in.host = host;
  const ScoreResult full = Score(in, params);
  std::printf("%.9g %.6f %.6f %.6f\n", x, full.score, bare.score,
              full.components[static_cast<int>(component)]);
}

int Usage() {
  std::fprintf(stderr, "usage: vmtime_score_curve offset|drift\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return Usage();
  const std::string_view what = argv[1];
  const Params params;
  if (what == "offset") {
    std::printf("# abs_offset_s score_synced score_no_optional offset_component\n");
    // 1 ms .. 30 min, 200 points per decade, plus the knots themselves.
    for (int i = 0; i <= 200 * 6; ++i) {
      const double x = 1e-3 * std::pow(10.0, i / 200.0);
      if (x > 1800) break;
      Row(x, History(x, 0), Component::kOffset, params);
    }
    return 0;
  }
  if (what == "drift") {
    std::printf("# drift_ppm score_synced score_no_optional drift_component\n");
    for (int ppm = 0; ppm <= 800; ppm += 2) {
      Row(ppm, History(0, ppm * 1e-6), Component::kDrift, params);
    }
    return 0;
  }
  return Usage();
}
