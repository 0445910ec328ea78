// Validation of scoring::Params: every rule the model relies on (knots
// increasing, values in range, weights usable). The config loader calls
// Validate after reading the YAML `scoring:` section and rejects the config
// with the returned message. Comparisons are written so that NaN fails them.
#include "scoring/params.h"

#include <cmath>
#include <string>

namespace vmtime::scoring {

namespace {

std::string Bad(const char* field, const std::string& why) {
  return std::string(field) + ": " + why;
}

bool InUnit(double v) { return v >= 0 && v <= 1; }

}  // namespace

std::string Validate(const Params& p) {
  // Offset knots: strictly increasing in seconds, values non-increasing.
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
  if (!InUnit(p.offset_warning_value)) return Bad("offset_warning_value", "must be in 0..1");
  if (!InUnit(p.offset_critical_value)) return Bad("offset_critical_value", "must be in 0..1");
  if (!(p.offset_critical_value <= p.offset_warning_value)) {
    return Bad("offset_critical_value",
               "must not exceed offset_warning_value (the score must not rise with |offset|)");
  }
  // Stratum.
  if (p.stratum_full < 0 || p.stratum_full > 16) return Bad("stratum_full", "must be in 0..16");
  if (p.stratum_zero <= p.stratum_full || p.stratum_zero > 16) {
    return Bad("stratum_zero", "must be greater than stratum_full and at most 16");
  }
  if (p.host_stratum_full < 0 || p.host_stratum_full >= p.stratum_zero) {
    return Bad("host_stratum_full", "must be >= 0 and less than stratum_zero");
  }
  if (!InUnit(p.sync_unknown_value)) return Bad("sync_unknown_value", "must be in 0..1");
  // Drift.
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
  // Stability.
  if (!(p.step_threshold_s > 0 && std::isfinite(p.step_threshold_s))) {
    return Bad("step_threshold_s", "must be a finite duration > 0");
  }
  if (!(p.stopped_ratio > 0 && p.stopped_ratio < 1)) {
    return Bad("stopped_ratio", "must be greater than 0 and less than 1");
  }
  if (p.stability_zero_events < 1) return Bad("stability_zero_events", "must be at least 1");
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
  // Weights: each >= 0 and finite, positive sum.
  struct Weight {
    const char* name;
    double value;
  };
  const Weight weights[] = {
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
  // Gates: caps on the 0..100 score.
  const Weight gates[] = {
      {"gate_clock_stopped_max", p.gate_clock_stopped_max},
      {"gate_offset_critical_max", p.gate_offset_critical_max},
      {"gate_agent_unreachable_max", p.gate_agent_unreachable_max},
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

}  // namespace vmtime::scoring
