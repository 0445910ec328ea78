// A synthetic libvirt fleet for the store and exposition benchmarks.
//
// Every VM's clock is a pure function of (VM index, poll round), so any round
// can be generated on its own: most guests sit within milliseconds of the
// host and drift a few ppm; some drift 400 ppm, some are 8 minutes behind,
// some stepped 2 s forward half-way, some have a stopped clock, some are
// paused and some have an unreachable agent. Offsets are guest minus host
// realtime, in seconds (positive = guest ahead); polls are 15 s apart.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "exporter/config/config.h"
#include "exporter/model/observations.h"
#include "exporter/store/store.h"

namespace vmtime::bench {

constexpr int64_t kSecondNs = 1'000'000'000;
constexpr int64_t kPollNs = 15 * kSecondNs;
constexpr int64_t kEpochRealNs = 1'767'225'600 * kSecondNs;  // host realtime at mono 0

enum class VmKind { kHealthy, kDrifting, kFarBehind, kStepped, kStopped, kPaused, kAgentDown };

inline uint32_t Mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

inline VmKind KindOf(int vm) {
  const uint32_t p = Mix(static_cast<uint32_t>(vm)) % 100;
  if (p < 80) return VmKind::kHealthy;
  if (p < 90) return VmKind::kDrifting;
  if (p < 92) return VmKind::kFarBehind;
  if (p < 94) return VmKind::kStepped;
  if (p < 95) return VmKind::kStopped;
  if (p < 98) return VmKind::kPaused;
  return VmKind::kAgentDown;
}

inline std::string VmName(int vm) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "vm%05d", vm);
  return buf;
}

inline std::string VmUuid(int vm) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08x-0000-4000-8000-%012x", static_cast<unsigned>(vm),
                static_cast<unsigned>(Mix(static_cast<uint32_t>(vm))));
  return buf;
}

// Host monotonic time of poll round `round`, nanoseconds.
inline int64_t RoundMonoNs(int round) { return 1000 * kSecondNs + round * kPollNs; }

// The clock sample of VM `vm` in round `round` (guest minus host realtime).
inline scoring::ClockSample SampleOf(int vm, int round) {
  const VmKind kind = KindOf(vm);
  const double jitter_s = static_cast<double>(Mix(static_cast<uint32_t>(vm * 131 + round)) % 1000) *
                          1e-6;  // 0..1 ms of noise
  const double base_s = static_cast<double>(Mix(static_cast<uint32_t>(vm) * 7u) % 2000) * 1e-6;
  const double elapsed_s = static_cast<double>(round) * 15.0;
  double offset_s = base_s + jitter_s;
  switch (kind) {
    case VmKind::kDrifting:
      offset_s += 400e-6 * elapsed_s;
      break;
    case VmKind::kFarBehind:
      offset_s -= 480;
      break;
    case VmKind::kStepped:
      if (round % 64 >= 32) offset_s += 2;
      break;
    case VmKind::kStopped:
      // The guest clock froze at round 60: its offset falls by the host's elapsed time.
      if (round % 64 > 60) offset_s -= static_cast<double>(round % 64 - 60) * 15.0;
      break;
    default:
      offset_s += 3e-6 * elapsed_s;
  }
  scoring::ClockSample s;
  s.host_mono_ns = RoundMonoNs(round);
  s.host_real_ns = kEpochRealNs + s.host_mono_ns;
  s.guest_real_ns = s.host_real_ns + static_cast<int64_t>(offset_s * 1e9);
  s.offset_s = offset_s;
  s.uncertainty_s = 0.0004;
  return s;
}

// One libvirt collector run of `n` domains in round `round`: running domains
// with a reachable agent carry a new sample.
inline LibvirtObservation LibvirtRound(int n, int round) {
  LibvirtObservation lv;
  lv.connected = true;
  lv.domains.reserve(static_cast<size_t>(n));
  for (int vm = 0; vm < n; ++vm) {
    DomainObservation d;
    d.name = VmName(vm);
    d.uuid = VmUuid(vm);
    const VmKind kind = KindOf(vm);
    d.state = kind == VmKind::kPaused ? DomainState::kPaused : DomainState::kRunning;
    d.agent_up = kind != VmKind::kAgentDown;
    if (!d.agent_up) {
      d.agent_error = "Guest agent is not responding: QEMU guest agent is not connected";
      d.agent_failures = round;
    }
    // Paused and agent-down VMs stop getting samples after round 10.
    if (d.agent_up && (kind != VmKind::kPaused || round < 10)) {
      d.sample = SampleOf(vm, round);
      d.rtt_s = 0.0008;
    }
    d.last_attempt_mono_ns = RoundMonoNs(round);
    lv.domains.push_back(std::move(d));
  }
  return lv;
}

// A synchronised host chronyd (stratum 2, 20 us fast).
inline ChronyObservation HostChrony(int round) {
  ChronyObservation c;
  c.measured_real_ns = kEpochRealNs + RoundMonoNs(round);
  c.tracking.stratum = 2;
  c.tracking.reference_name = "192.0.2.1";
  c.tracking.system_time_offset_s = 20e-6;
  c.tracking.root_delay_s = 0.004;
  c.tracking.root_dispersion_s = 0.0005;
  c.tracking.leap_status = 0;
  return c;
}

// The built-in configuration (every collector at its default interval).
inline Config DefaultConfig() {
  auto parsed = ParseConfig(DefaultConfigYaml(), "<built-in>");
  if (!parsed.ok()) {
    std::fprintf(stderr, "built-in config does not parse\n");
    std::abort();
  }
  return std::move(parsed).value();
}

// A store holding `n` VMs whose histories are full (`rounds` libvirt runs
// applied, rounds 0..rounds-1) plus a host chronyd observation.
inline std::unique_ptr<Store> FilledStore(const Config& config, int n, int rounds) {
  auto store = std::make_unique<Store>(config);
  for (int r = 0; r < rounds; ++r) {
    Observations obs;
    obs.libvirt = LibvirtRound(n, r);
    store->Apply(obs);
  }
  Observations host;
  host.chrony = HostChrony(rounds - 1);
  store->Apply(host);
  return store;
}

}  // namespace vmtime::bench
