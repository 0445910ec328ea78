// Scoring inputs and outputs: plain structs, standard library only.
//
// Time convention: every *_mono_ns is the HOST's CLOCK_MONOTONIC in
// nanoseconds (arbitrary origin); every *_real_ns is a CLOCK_REALTIME-style
// value in nanoseconds since the Unix epoch. Offsets are always
// "guest clock minus reference clock" in seconds: positive = guest ahead.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vmtime::scoring {

// One bracketed guest-clock reading (README "What it measures": guest offset vs host).
struct ClockSample {
  int64_t host_mono_ns = 0;   // host monotonic at the bracket midpoint
  int64_t host_real_ns = 0;   // host realtime at the bracket midpoint
  int64_t guest_real_ns = 0;  // guest clock as returned by guest-get-time
  double offset_s = 0;        // guest - host realtime, positive = guest ahead
  double uncertainty_s = 0;   // half the bracket round trip, >= 0
  // The domain was paused, saved and restored, or migrated between the
  // previous sample and this one (libvirt lifecycle events): the guest clock
  // did not run for part of that interval, so the pair is neither a stop nor
  // a step, and the lag it leaves is `resumed_behind`.
  bool after_interruption = false;
};

enum class SyncState { kUnknown = 0, kSynchronised = 1, kUnsynchronised = 2 };

// Leap indicator as NTP encodes it; kUnknown when the daemon did not say.
enum class LeapStatus {
  kNormal = 0,
  kInsertSecond = 1,
  kDeleteSecond = 2,
  kUnsynchronised = 3,
  kUnknown = 4
};

// What the guest's own time daemon reports (optional, opt-in collector).
struct GuestSyncStatus {
  SyncState state = SyncState::kUnknown;
  std::optional<int> stratum;  // 0..16 as reported
  LeapStatus leap = LeapStatus::kUnknown;
  int64_t measured_mono_ns = 0;  // host monotonic when it was read
};

// The hypervisor's own time state (host chronyd / kernel timex).
struct HostReference {
  SyncState state = SyncState::kUnknown;
  std::optional<int> stratum;
  std::optional<double> offset_s;         // host - UTC, positive = host ahead
  std::optional<double> root_distance_s;  // root_delay/2 + root_dispersion
  std::string source;                     // what decided: "chrony", "kernel"; empty when unknown
};

// Everything the scorer may look at for one VM.
struct VmInput {
  std::span<const ClockSample> samples;  // oldest first, host_mono_ns increasing; may be empty
  bool running = true;                   // domain state is running
  bool agent_reachable = false;          // the most recent agent attempt succeeded
  // False until the first agent attempt has finished: the agent is then
  // neither up nor down (no `agent_unreachable`, only `no_data`).
  bool agent_attempted = true;
  std::optional<GuestSyncStatus> guest;  // absent when not collected
  std::optional<HostReference> host;     // absent when not collected
  int64_t now_mono_ns = 0;               // evaluation time, host monotonic
  double poll_interval_s = 15;           // nominal sampling interval
  // Max minus min offset of the running members of this VM's group on the
  // same host (this VM included), seconds; absent when the VM is in no
  // group or the group has fewer than two members with a sample.
  std::optional<double> group_offset_spread_s;
};

enum class Component : int {
  kOffset = 0,
  kSyncState,
  kStratum,
  kDrift,
  kStability,
  kFreshness,
  kHostReference,
  kCount
};
constexpr int kComponentCount = static_cast<int>(Component::kCount);
std::string_view ComponentName(Component c);  // "offset", "sync_state", ...

enum class Reason : int {
  kOffsetElevated = 0,  // |offset| above offset_elevated_s, up to warning
  kOffsetHigh,          // |offset| above warning
  kOffsetCritical,      // |offset| above critical
  kResumedBehind,       // behind since a pause/save/restore/migration
  kClockStopped,        // stopped pair in the drift window (gate: stopped now)
  kStepBackward,
  kStepForward,
  kDriftHigh,
  kUnsynchronised,
  kGuestSyncUnknown,  // guest status collected, but the daemon's state is unknown
  kStratumHigh,       // guest synchronised above stratum_full (gate: >= stratum_zero)
  kLeapPending,
  kStale,
  kAgentUnreachable,
  kHostUnsynchronised,
  kHostStratumHigh,  // host synchronised above host_stratum_full, below stratum_zero
  kNoData,
  // This VM's group (the same-host members, VmInput::group_offset_spread_s)
  // spreads wider than group_skew_s. Informational: no penalty, the
  // members' own offsets are scored as always.
  kGroupSkew,
  kCount
};
constexpr int kReasonCount = static_cast<int>(Reason::kCount);
std::string_view ReasonName(Reason r);  // "offset_high", "clock_stopped", ...

// A set of reasons, held as one bit per reason and iterated in enum order
// (so never with duplicates). Every VM's reasons are in every snapshot: as
// a std::vector they cost an allocation per VM per snapshot.
class ReasonSet {
 public:
  static_assert(kReasonCount <= 32, "one bit per reason in a uint32_t");

  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Reason;
    using difference_type = std::ptrdiff_t;
    using pointer = const Reason*;
    using reference = Reason;

    const_iterator() = default;
    Reason operator*() const { return static_cast<Reason>(i_); }
    const_iterator& operator++() {
      i_ = Next(bits_, i_ + 1);
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator was = *this;
      ++*this;
      return was;
    }
    bool operator==(const const_iterator& o) const { return i_ == o.i_; }

   private:
    friend class ReasonSet;
    const_iterator(uint32_t bits, int i) : bits_(bits), i_(Next(bits, i)) {}
    // The first reason at or after `i` in `bits`, else kReasonCount.
    static int Next(uint32_t bits, int i) {
      const uint32_t rest = i >= kReasonCount ? 0 : bits >> i;
      return rest == 0 ? kReasonCount : i + std::countr_zero(rest);
    }
    uint32_t bits_ = 0;
    int i_ = kReasonCount;
  };
  using iterator = const_iterator;
  using value_type = Reason;
  using size_type = size_t;

  ReasonSet() = default;
  ReasonSet(std::initializer_list<Reason> reasons) {
    for (Reason r : reasons) insert(r);
  }
  // Bit i for Reason i (bits from kReasonCount up are ignored).
  static ReasonSet FromBits(uint32_t bits) {
    ReasonSet s;
    s.bits_ = bits & kAll;
    return s;
  }

  void insert(Reason r) { bits_ |= Bit(r); }
  void erase(Reason r) { bits_ &= ~Bit(r); }
  bool contains(Reason r) const { return (bits_ & Bit(r)) != 0; }
  bool empty() const { return bits_ == 0; }
  size_t size() const { return static_cast<size_t>(std::popcount(bits_)); }
  uint32_t bits() const { return bits_; }
  const_iterator begin() const { return {bits_, 0}; }
  const_iterator end() const { return {bits_, kReasonCount}; }
  bool operator==(const ReasonSet&) const = default;

 private:
  static constexpr uint32_t kAll =
      kReasonCount == 32 ? ~uint32_t{0} : (uint32_t{1} << kReasonCount) - 1;
  static uint32_t Bit(Reason r) {
    const auto i = static_cast<int>(r);
    return i >= 0 && i < kReasonCount ? uint32_t{1} << i : 0;
  }
  uint32_t bits_ = 0;
};

// Score bands (Params::band_good_min, band_degraded_min): what an operator
// does about a VM. Exported as vmtime_vm_health_band (the enum value).
enum class Band : int { kGood = 0, kDegraded = 1, kBad = 2 };
std::string_view BandName(Band b);  // "good", "degraded", "bad"

struct DriftEstimate {
  double ratio = 0;           // d(offset)/d(host time), dimensionless (1e-6 = 1 ppm)
  double standard_error = 0;  // of the slope
  int samples = 0;
};

struct StepCounts {
  int forward = 0;
  int backward = 0;
};

struct ScoreResult {
  double score = 0;                                  // 0..100
  Band band = Band::kBad;                            // from score and Params band_*
  std::array<double, kComponentCount> components{};  // each 0..1
  // False for a component whose input was not collected at all (no guest
  // status: sync_state and stratum; no host sync state: host_reference; a
  // guest status without a stratum: stratum). Such a component holds 1, is
  // left out of the weighted mean (the other weights are renormalised) and
  // its series is not exported.
  std::array<bool, kComponentCount> measured{};
  ReasonSet reasons;                    // active reasons (iterated in enum order)
  bool clock_stopped = false;           // stopped now: the newest pair, domain running
  std::optional<DriftEstimate> drift;   // absent with fewer than min samples
  StepCounts steps_in_window;           // steps seen in the drift window
  int stops_in_window = 0;              // stopped pairs in the drift window
  std::optional<double> offset_used_s;  // the offset scored (UTC when host offset known)
  double freshness_age_s = 0;           // now - newest sample, or +inf-like if none
};

}  // namespace vmtime::scoring
