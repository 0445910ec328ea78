// Every constant of the scoring model with its default (docs/scoring.md argues each).
// The exporter's YAML `scoring:` section maps 1:1 onto these fields
// (same names); docs/scoring.md and docs/configuration.md document them.
#pragma once

#include <array>
#include <optional>
#include <string>

#include "scoring/types.h"

namespace vmtime::scoring {

struct Params {
  // offset component: piecewise linear in |offset| through these knots.
  double offset_full_s = 0.010;  // <= this scores 1
  // Reason offset_elevated above this (up to offset_warning_s): farther from
  // the reference than a guest kept by NTP sits (node-mixin's skew alert
  // level). Informational: no gate.
  double offset_elevated_s = 0.050;
  double offset_warning_s = 30;  // scores offset_warning_value
  double offset_warning_value = 0.6;
  double offset_critical_s = 300;  // scores offset_critical_value
  double offset_critical_value = 0.2;
  double offset_zero_s = 900;  // >= this scores 0
  // stratum component
  int stratum_full = 4;   // <= scores 1
  int stratum_zero = 10;  // >= scores 0
  // sync state component when guest status was collected but the daemon's
  // state is unknown (reason guest_sync_unknown). Not collected at all: the
  // component is left out of the mean instead.
  double sync_unknown_value = 0.5;
  // drift component (ratio, 1e-6 = 1 ppm)
  double drift_full_ratio = 50e-6;
  double drift_zero_ratio = 500e-6;
  int drift_min_samples = 4;
  double drift_window_s = 3600;  // samples older than now - window are ignored for drift
  // The drift scored is |slope| minus this many standard errors (>= 0), so
  // measurement noise on a short history does not read as drift.
  double drift_confidence_sigmas = 2;
  // stability component
  double step_threshold_s = 1.0;  // a jump beyond drift larger than this is a step
  double stopped_ratio = 0.1;     // |guest elapsed| / host elapsed below this = stopped
  int stability_zero_events = 3;  // this many steps/stops in the window scores 0
  // A backward step counts as this many events (time running backwards breaks
  // more than a forward jump does: log order, TLS validity, monotonic caches).
  double stability_backward_step_events = 2;
  // freshness component, in multiples of poll_interval_s
  double freshness_full_intervals = 2;
  double freshness_zero_intervals = 10;
  // host reference component
  int host_stratum_full = 4;
  // Reason group_skew (informational) while the same-host members of the
  // VM's group spread wider than this (max minus min offset).
  double group_skew_s = 1.0;
  // weights (normalised by their sum)
  double weight_offset = 0.40;
  double weight_sync_state = 0.15;
  double weight_stratum = 0.10;
  double weight_drift = 0.15;
  double weight_stability = 0.05;
  double weight_freshness = 0.10;
  double weight_host_reference = 0.05;
  // gates: caps on the score while their reason holds (docs/scoring.md)
  double gate_clock_stopped_max = 10;      // clock stopped now, domain running
  double gate_offset_critical_max = 20;    // |offset| > offset_critical_s
  double gate_offset_high_max = 50;        // |offset| > offset_warning_s
  double gate_agent_unreachable_max = 50;  // agent unreachable, no fresh sample
  double gate_stratum_max = 89;            // guest synchronised at stratum >= stratum_zero
  double gate_resumed_behind_max = 89;     // resumed_behind
  // Explained scores: no component may lose more than this many of the 100
  // points without an active reason that names it. Validate enforces it for
  // the one component that can lose points silently (offset, below
  // offset_elevated_s); every other loss always has a reason.
  double explain_min_points = 2;
  // bands: score >= band_good_min is good, >= band_degraded_min degraded,
  // below that bad
  double band_good_min = 90;
  double band_degraded_min = 60;

  bool operator==(const Params&) const = default;
};

// Returns an empty string when valid, else a message naming the bad field.
std::string Validate(const Params& p);

}  // namespace vmtime::scoring
