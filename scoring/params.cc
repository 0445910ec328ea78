// Validation of scoring::Params: every rule the model relies on (knots
// increasing, values in range, weights usable, no silent loss above
// explain_min_points). The config loader calls Validate after reading the
// YAML `scoring:` section and rejects the config with the returned message.
// Comparisons are written so that NaN fails them.
#include "scoring/params.h"

#include <cmath>
#include <cstdio>
#include <string>

#include "scoring/score.h"

namespace vmtime::scoring {

namespace {

std::string Bad(const char* field, const std::string& why) {
  return std::string(field) + ": " + why;
}

bool InUnit(double v) { return v >= 0 && v <= 1; }

struct Named {
  const char* name;
  double value;
};

// Offset, drift, stability and freshness are measured for every VM (with or
// without samples); the others may be left out of the mean.
double AlwaysMeasuredWeight(const Params& p) {
  return p.weight_offset + p.weight_drift + p.weight_stability + p.weight_freshness;
}

// Offset knots: strictly increasing in seconds, values non-increasing.
std::string ValidateOffset(const Params& p) {
  if (!(p.offset_full_s >= 0 && std::isfinite(p.offset_full_s))) {
    return Bad("offset_full_s", "must be a finite value >= 0");
  }
  if (!(p.offset_warning_s > p.offset_full_s && std::isfinite(p.offset_warning_s))) {
    return Bad("offset_warning_s", "must be greater than offset_full_s");
  }
  if (!(p.offset_critical_s > p.offset_warning_s && std::isfinite(p.offset_critical_s))) {
    return Bad("offset_critical_s", "must be greater than offset_warning_s");
  }
  if (!(p.offset_zero_s > p.offset_critical_s && std::isfinite(p.offset_zero_s))) {
    return Bad("offset_zero_s", "must be greater than offset_critical_s");
  }
  if (!(p.offset_elevated_s >= p.offset_full_s && p.offset_elevated_s < p.offset_warning_s)) {
    return Bad("offset_elevated_s",
               "must be at least offset_full_s and less than offset_warning_s");
  }
  if (!InUnit(p.offset_warning_value)) return Bad("offset_warning_value", "must be in 0..1");
  if (!InUnit(p.offset_critical_value)) return Bad("offset_critical_value", "must be in 0..1");
  if (!(p.offset_critical_value <= p.offset_warning_value)) {
    return Bad("offset_critical_value",
               "must not exceed offset_warning_value (the score must not rise with |offset|)");
  }
  return "";
}

// Guest and host strata, and the unknown sync state value.
std::string ValidateStratum(const Params& p) {
  if (p.stratum_full < 0 || p.stratum_full > 16) return Bad("stratum_full", "must be in 0..16");
  if (p.stratum_zero <= p.stratum_full || p.stratum_zero > 16) {
    return Bad("stratum_zero", "must be greater than stratum_full and at most 16");
  }
  if (p.host_stratum_full < 0 || p.host_stratum_full >= p.stratum_zero) {
    return Bad("host_stratum_full", "must be >= 0 and less than stratum_zero");
  }
  if (!InUnit(p.sync_unknown_value)) return Bad("sync_unknown_value", "must be in 0..1");
  return "";
}

// Drift ramp, estimator and window.
std::string ValidateDrift(const Params& p) {
  if (!(p.drift_full_ratio >= 0 && std::isfinite(p.drift_full_ratio))) {
    return Bad("drift_full_ratio", "must be a finite value >= 0");
  }
  if (!(p.drift_zero_ratio > p.drift_full_ratio && std::isfinite(p.drift_zero_ratio))) {
    return Bad("drift_zero_ratio", "must be greater than drift_full_ratio");
  }
  if (p.drift_min_samples < 3) {
    return Bad("drift_min_samples", "must be at least 3 (a slope and its standard error)");
  }
  if (!(p.drift_window_s > 0 && std::isfinite(p.drift_window_s))) {
    return Bad("drift_window_s", "must be a finite duration > 0");
  }
  if (!(p.drift_confidence_sigmas >= 0 && p.drift_confidence_sigmas <= 10)) {
    return Bad("drift_confidence_sigmas", "must be in 0..10");
  }
  return "";
}

// Steps, stops, stability and freshness.
std::string ValidateStability(const Params& p) {
  if (!(p.step_threshold_s > 0 && std::isfinite(p.step_threshold_s))) {
    return Bad("step_threshold_s", "must be a finite duration > 0");
  }
  if (!(p.stopped_ratio > 0 && p.stopped_ratio < 1)) {
    return Bad("stopped_ratio", "must be greater than 0 and less than 1");
  }
  if (p.stability_zero_events < 1) return Bad("stability_zero_events", "must be at least 1");
  if (!(p.group_skew_s > 0 && std::isfinite(p.group_skew_s))) {
    return Bad("group_skew_s", "must be a finite duration > 0");
  }
  if (!(p.stability_backward_step_events >= 0 && std::isfinite(p.stability_backward_step_events))) {
    return Bad("stability_backward_step_events", "must be a finite value >= 0");
  }
  // Freshness.
  if (!(p.freshness_full_intervals >= 0 && std::isfinite(p.freshness_full_intervals))) {
    return Bad("freshness_full_intervals", "must be a finite value >= 0");
  }
  if (!(p.freshness_zero_intervals > p.freshness_full_intervals &&
        std::isfinite(p.freshness_zero_intervals))) {
    return Bad("freshness_zero_intervals", "must be greater than freshness_full_intervals");
  }
  return "";
}

// Weights: each finite and >= 0; the always-measured ones with a positive sum.
std::string ValidateWeights(const Params& p) {
  const Named weights[] = {
      {"weight_offset", p.weight_offset},
      {"weight_sync_state", p.weight_sync_state},
      {"weight_stratum", p.weight_stratum},
      {"weight_drift", p.weight_drift},
      {"weight_stability", p.weight_stability},
      {"weight_freshness", p.weight_freshness},
      {"weight_host_reference", p.weight_host_reference},
  };
  double sum = 0;
  for (const auto& w : weights) {
    if (!(w.value >= 0 && std::isfinite(w.value)))
      return Bad(w.name, "must be a finite value >= 0");
    sum += w.value;
  }
  if (!(sum > 0)) return Bad("weight_*", "the weights must have a positive sum");
  if (!(AlwaysMeasuredWeight(p) > 0)) {
    return Bad("weight_*",
               "weight_offset, weight_drift, weight_stability and weight_freshness (always "
               "measured) must have a positive sum");
  }
  return "";
}

// Gates (caps on the 0..100 score) and bands.
std::string ValidateGatesAndBands(const Params& p) {
  const Named gates[] = {
      {"gate_clock_stopped_max", p.gate_clock_stopped_max},
      {"gate_offset_critical_max", p.gate_offset_critical_max},
      {"gate_offset_high_max", p.gate_offset_high_max},
      {"gate_agent_unreachable_max", p.gate_agent_unreachable_max},
      {"gate_stratum_max", p.gate_stratum_max},
      {"gate_resumed_behind_max", p.gate_resumed_behind_max},
  };
  for (const auto& g : gates) {
    if (!(g.value >= 0 && g.value <= 100)) return Bad(g.name, "must be in 0..100");
  }
  if (!(p.band_degraded_min >= 0 && p.band_degraded_min <= p.band_good_min &&
        p.band_good_min <= 100)) {
    return Bad("band_good_min", "bands need 0 <= band_degraded_min <= band_good_min <= 100");
  }
  return "";
}

// Explained scores: below offset_elevated_s the offset component loses
// points without a reason. The most it can cost is its share when only the
// always-measured components count (runs after the weights are checked).
std::string ValidateExplained(const Params& p) {
  if (!(p.explain_min_points >= 0 && p.explain_min_points <= 100)) {
    return Bad("explain_min_points", "must be in 0..100");
  }
  const double silent_points = 100 * p.weight_offset / AlwaysMeasuredWeight(p) *
                               (1 - OffsetComponent(p.offset_elevated_s, p));
  if (!(silent_points <= p.explain_min_points)) {
    char why[200];
    std::snprintf(why, sizeof why,
                  "the offset component loses up to %.2f points below it without a reason, more "
                  "than explain_min_points (%.2f): lower it or raise explain_min_points",
                  silent_points, p.explain_min_points);
    return Bad("offset_elevated_s", why);
  }
  return "";
}

}  // namespace

std::string Validate(const Params& p) {
  for (auto* check : {ValidateOffset, ValidateStratum, ValidateDrift, ValidateStability,
                      ValidateWeights, ValidateGatesAndBands, ValidateExplained}) {
    std::string bad = check(p);
    if (!bad.empty()) return bad;
  }
  return "";
}

}  // namespace vmtime::scoring
