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

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// A source that means "not synchronised to anything".
bool IsLocalSource(std::string_view source) {
  std::string s = Lower(source);
  return s.find("cmos") != std::string::npos || s.find("free-running") != std::string::npos ||
         s.find("freilaufend") != std::string::npos ||
         s.find("fonctionnement libre") != std::string::npos;
}

}  // namespace

Result<GuestStatusObservation> ParseW32tmStatus(std::string_view out) {
  std::optional<std::string_view> leap_text, stratum_text, delay_text, disp_text, source_text,
      refid_text;
  for (auto line : SplitLines(out)) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = Trim(line.substr(colon + 1));
    switch (FieldOf(line.substr(0, colon))) {
      case Field::kLeap:
        if (!leap_text) leap_text = value;
        break;
      case Field::kStratum:
        if (!stratum_text) stratum_text = value;
        break;
      case Field::kRootDelay:
        if (!delay_text) delay_text = value;
        break;
      case Field::kRootDispersion:
        if (!disp_text) disp_text = value;
        break;
      case Field::kSource:
        if (!source_text) source_text = value;
        break;
      case Field::kReferenceId:
        if (!refid_text) refid_text = value;
        break;
      case Field::kNone:
        break;
    }
  }
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
  auto seconds = [&](std::optional<std::string_view> text,
                     std::string_view name) -> Result<std::optional<double>> {
    if (!text) return std::optional<double>();
    auto v = LeadingDouble(*text, /*decimal_comma=*/true);
    if (!v)
      return Error{std::string(kCmd) + ": " + std::string(name) +
                   " is not a number of seconds: " + Quote(*text)};
    return std::optional<double>(*v);
  };
  auto delay = seconds(delay_text, "Root Delay");
  if (!delay) return delay.error();
  obs.root_delay_s = *delay;
  auto disp = seconds(disp_text, "Root Dispersion");
  if (!disp) return disp.error();
  obs.root_dispersion_s = *disp;

  bool local_source = false;
  if (source_text && !source_text->empty()) {
    std::string_view src = *source_text;
    // "time.windows.com,0x9": drop the NTP client flags.
    if (size_t p = src.find(",0x"); p != std::string_view::npos) src = src.substr(0, p);
    obs.reference = std::string(Trim(src));
    local_source = IsLocalSource(src);
  } else if (refid_text && !refid_text->empty()) {
    obs.reference = std::string(*refid_text);
  }

  bool unsynced = *leap == 3 || *stratum == 0 || *stratum >= 16 || local_source;
  obs.status.state =
      unsynced ? scoring::SyncState::kUnsynchronised : scoring::SyncState::kSynchronised;
  return obs;
}

}  // namespace vmtime::guest_status
