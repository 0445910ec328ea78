// Parser for `w32tm /query /status` (Windows Time service); see parsers.h.
//
// Lines are "Label: value" in the display language of the guest, in its
// console code page (UTF-8, CP850, CP1252...). Labels are compared by their
// ASCII letters and digits only (LabelKey), so "Stammverzögerung" matches in
// any code page; the English, German and French labels below are known.
// Numbers may use a decimal comma ("0,0312500s").
#include <array>
#include <string>

#include "exporter/collectors/guest_status/parse_text.h"
#include "exporter/collectors/guest_status/parsers.h"

namespace vmtime::guest_status {
namespace {

constexpr std::string_view kCmd = "w32tm /query /status";

enum class Field { kLeap, kStratum, kRootDelay, kRootDispersion, kSource, kReferenceId, kNone };
constexpr size_t kFieldCount = static_cast<size_t>(Field::kNone);

struct Label {
  std::string_view key;  // LabelKey() of the label
  Field field;
};

constexpr std::array<Label, 17> kLabels = {{
    {"leapindicator", Field::kLeap},                 // en
    {"sprungindikator", Field::kLeap},               // de
    {"indicateurdesaut", Field::kLeap},              // fr
    {"stratum", Field::kStratum},                    // en, de
    {"strate", Field::kStratum},                     // fr
    {"rootdelay", Field::kRootDelay},                // en
    {"stammverzgerung", Field::kRootDelay},          // de "Stammverzögerung"
    {"dlaideracine", Field::kRootDelay},             // fr "Délai de racine"
    {"rootdispersion", Field::kRootDispersion},      // en
    {"stammstreuung", Field::kRootDispersion},       // de
    {"stammabweichung", Field::kRootDispersion},     // de (other releases)
    {"dispersionderacine", Field::kRootDispersion},  // fr
    {"source", Field::kSource},                      // en, fr
    {"quelle", Field::kSource},                      // de
    {"referenceid", Field::kReferenceId},            // en
    {"referenzid", Field::kReferenceId},             // de
    {"iddrfrence", Field::kReferenceId},             // fr "ID de référence"
}};

Field FieldOf(std::string_view label) {
  std::string key = LabelKey(label);
  for (const auto& l : kLabels) {
    if (l.key == key) return l.field;
  }
  return Field::kNone;
}

// A source that means "not synchronised to anything".
bool IsLocalSource(std::string_view source) {
  std::string s = AsciiLower(source);
  return s.find("cmos") != std::string::npos || s.find("free-running") != std::string::npos ||
         s.find("freilaufend") != std::string::npos ||
         s.find("fonctionnement libre") != std::string::npos;
}

// The value of each known label, first occurrence, by Field.
using Fields = std::array<std::optional<std::string_view>, kFieldCount>;

Fields CollectFields(std::string_view out) {
  Fields fields;
  for (auto line : SplitLines(out)) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const Field f = FieldOf(line.substr(0, colon));
    if (f == Field::kNone) continue;
    auto& slot = fields[static_cast<size_t>(f)];
    if (!slot) slot = Trim(line.substr(colon + 1));
  }
  return fields;
}

// "0,0312500s" -> 0.03125; absent stays absent.
Result<std::optional<double>> Seconds(std::optional<std::string_view> text, std::string_view name) {
  if (!text) return std::optional<double>();
  auto v = LeadingDouble(*text, /*decimal_comma=*/true);
  if (!v) {
    return Error{std::string(kCmd) + ": " + std::string(name) +
                 " is not a number of seconds: " + Quote(*text)};
  }
  return std::optional<double>(*v);
}

// The reference from Source (dropping ",0x9" client flags), else from
// ReferenceId. Returns whether the source is the local clock.
bool ReadReference(const Fields& fields, GuestStatusObservation& obs) {
  const auto& source = fields[static_cast<size_t>(Field::kSource)];
  const auto& refid = fields[static_cast<size_t>(Field::kReferenceId)];
  if (source && !source->empty()) {
    std::string_view src = *source;
    if (size_t p = src.find(",0x"); p != std::string_view::npos) src = src.substr(0, p);
    obs.reference = std::string(Trim(src));
    return IsLocalSource(src);
  }
  if (refid && !refid->empty()) obs.reference = std::string(*refid);
  return false;
}

}  // namespace

Result<GuestStatusObservation> ParseW32tmStatus(std::string_view out) {
  const Fields fields = CollectFields(out);
  const auto& leap_text = fields[static_cast<size_t>(Field::kLeap)];
  const auto& stratum_text = fields[static_cast<size_t>(Field::kStratum)];
  if (!leap_text) {
    return Error{std::string(kCmd) +
                 ": no Leap Indicator line (not w32tm status output, "
                 "an unknown language, or an error message): " +
                 Quote(Trim(out))};
  }
  if (!stratum_text) return Error{std::string(kCmd) + ": no Stratum line (truncated?)"};

  GuestStatusObservation obs;
  obs.daemon = "w32time";
  auto leap = LeadingInt(*leap_text);
  if (!leap || *leap < 0 || *leap > 3) {
    return Error{std::string(kCmd) + ": Leap Indicator is not 0..3: " + Quote(*leap_text)};
  }
  obs.status.leap = static_cast<scoring::LeapStatus>(*leap);
  auto stratum = LeadingInt(*stratum_text);
  if (!stratum || *stratum < 0 || *stratum > 255) {
    return Error{std::string(kCmd) + ": Stratum is not an integer 0..255: " + Quote(*stratum_text)};
  }
  obs.status.stratum = static_cast<int>(*stratum);
  auto delay = Seconds(fields[static_cast<size_t>(Field::kRootDelay)], "Root Delay");
  if (!delay) return delay.error();
  obs.root_delay_s = *delay;
  auto disp = Seconds(fields[static_cast<size_t>(Field::kRootDispersion)], "Root Dispersion");
  if (!disp) return disp.error();
  obs.root_dispersion_s = *disp;

  const bool local_source = ReadReference(fields, obs);
  bool unsynced = *leap == 3 || *stratum == 0 || *stratum >= 16 || local_source;
  obs.status.state =
      unsynced ? scoring::SyncState::kUnsynchronised : scoring::SyncState::kSynchronised;
  return obs;
}

}  // namespace vmtime::guest_status
