// The status page (see status_page.h): query parsing, unit formatting and
// the HTML. Every value that comes from outside (domain names, uuids, error
// texts, query parameters) goes through Escape before it reaches the page;
// query values in links are percent-encoded first.
#include "exporter/exposition/status_page.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>

#include "exporter/core/build_info.h"
#include "exporter/core/clock.h"
#include "exporter/model/domain_labels.h"
#include "scoring/score.h"

namespace vmtime::exposition {
namespace {

constexpr size_t kMaxShownValueChars = 60;  // of a rejected parameter value, on the page

std::string Escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding: '+' is a space, "%XX" a byte;
// a malformed escape is kept literally. Control characters are dropped.
std::string UrlDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      c = static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    }
    if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out += c;
  }
  return out;
}

// A value quoted for a problem message, shortened so a hostile query is not
// echoed at length (it is escaped when the page is rendered).
std::string Quoted(std::string_view v) {
  if (v.size() <= kMaxShownValueChars) return "\"" + std::string(v) + "\"";
  return "\"" + std::string(v.substr(0, kMaxShownValueChars)) + "...\" (" +
         std::to_string(v.size()) + " characters)";
}

std::optional<size_t> ParseCount(std::string_view v) {
  size_t n = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || v.empty()) return std::nullopt;
  return n;
}

std::string ReasonList() {
  std::string names;
  for (int r = 0; r < scoring::kReasonCount; ++r) {
    names += (r ? ", " : "") + std::string(scoring::ReasonName(static_cast<scoring::Reason>(r)));
  }
  return names;
}

void ParseReason(const std::string& v, StatusQuery& q) {
  if (v.empty() || v == "any") return;
  for (int r = 0; r < scoring::kReasonCount; ++r) {
    if (scoring::ReasonName(static_cast<scoring::Reason>(r)) == v) {
      q.reason = static_cast<scoring::Reason>(r);
      return;
    }
  }
  q.problems.push_back("reason " + Quoted(v) + " is not a reason name (one of " + ReasonList() +
                       "); showing every reason.");
}

void ParseBand(const std::string& v, StatusQuery& q) {
  if (v.empty() || v == "any") return;
  for (auto b : {scoring::Band::kGood, scoring::Band::kDegraded, scoring::Band::kBad}) {
    if (scoring::BandName(b) == v) {
      q.band = b;
      return;
    }
  }
  q.problems.push_back("band " + Quoted(v) +
                       " is not a band (good, degraded or bad); showing every band.");
}

void ParseLimit(const std::string& v, StatusQuery& q) {
  if (v.empty()) return;
  const auto n = ParseCount(v);
  if (!n || *n == 0) {
    q.problems.push_back("limit " + Quoted(v) + " is not a whole number of rows from 1 to " +
                         std::to_string(kStatusMaxLimit) + "; showing " +
                         std::to_string(kStatusDefaultLimit) + ".");
  } else if (*n > kStatusMaxLimit) {
    q.limit = kStatusMaxLimit;
    q.problems.push_back("limit " + v + " is above the maximum of " +
                         std::to_string(kStatusMaxLimit) + " rows per page; showing " +
                         std::to_string(kStatusMaxLimit) + ".");
  } else {
    q.limit = *n;
  }
}

void ParseParameter(const std::string& key, const std::string& value, StatusQuery& q) {
  if (key == "q") {
    if (value.size() > kStatusMaxQueryChars) {
      q.problems.push_back("q is longer than " + std::to_string(kStatusMaxQueryChars) +
                           " characters; name filter ignored.");
    } else {
      q.name = value;
    }
  } else if (key == "reason") {
    ParseReason(value, q);
  } else if (key == "band") {
    ParseBand(value, q);
  } else if (key == "limit") {
    ParseLimit(value, q);
  } else if (key == "offset") {
    const auto n = ParseCount(value);
    if (n) {
      q.offset = *n;
    } else if (!value.empty()) {
      q.problems.push_back("offset " + Quoted(value) +
                           " is not a whole number of rows (0 or more); starting at the first.");
    }
  } else if (key == "group") {
    if (value.empty()) return;
    if (std::string bad = CheckGroupName(value); !bad.empty()) {
      q.problems.push_back("group " + Quoted(value.substr(0, kMaxGroupBytes + 1)) + ": " + bad +
                           "; showing every group.");
    } else {
      q.group = value;
    }
  } else {
    q.problems.push_back("unknown parameter " + Quoted(key) +
                         " ignored (known: q, reason, band, group, limit, offset).");
  }
}

// ---- formatting ----

std::string Grouped(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// |seconds| in the largest unit that keeps it readable, without sign.
std::string Magnitude(double a) {
  char buf[64];
  if (a == 0) return "0 s";
  if (a < 1e-5) {
    std::snprintf(buf, sizeof(buf), "%.1f \u00b5s", a * 1e6);
  } else if (a < 1e-3) {
    std::snprintf(buf, sizeof(buf), "%.0f \u00b5s", a * 1e6);
  } else if (a < 1e-2) {
    std::snprintf(buf, sizeof(buf), "%.2f ms", a * 1e3);
  } else if (a < 0.1) {
    std::snprintf(buf, sizeof(buf), "%.1f ms", a * 1e3);
  } else if (a < 1) {
    std::snprintf(buf, sizeof(buf), "%.0f ms", a * 1e3);
  } else if (a < 10) {
    std::snprintf(buf, sizeof(buf), "%.2f s", a);
  } else if (a < 60) {
    std::snprintf(buf, sizeof(buf), "%.1f s", a);
  } else if (a < 3600) {
    std::snprintf(buf, sizeof(buf), "%.1f min", a / 60);
  } else if (a < 86400) {
    std::snprintf(buf, sizeof(buf), "%.1f h", a / 3600);
  } else {
    const double days = a / 86400;
    const double whole = std::floor(days);
    const int tenth = static_cast<int>(std::lround((days - whole) * 10));
    const uint64_t w = static_cast<uint64_t>(whole) + (tenth == 10 ? 1 : 0);
    return Grouped(w) + "." + std::to_string(tenth == 10 ? 0 : tenth) + " d";
  }
  return buf;
}

std::string Bad(const std::string& html) { return "<span class=\"bad\">" + html + "</span>"; }
std::string Muted(const std::string& html) { return "<span class=\"mute\">" + html + "</span>"; }

const CollectorStatus* FindCollector(const Snapshot& s, std::string_view name) {
  for (const auto& c : s.collectors) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

// ---- selection ----

bool ContainsIgnoringCase(std::string_view hay, std::string_view needle) {
  if (needle.empty()) return true;
  auto lower = [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  };
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                     [&](char a, char b) { return lower(a) == lower(b); }) != hay.end();
}

bool Matches(const VmView& vm, const StatusQuery& q) {
  if (q.band && vm.score.band != *q.band) return false;
  if (!q.group.empty() && vm.group != q.group) return false;
  if (q.reason && std::find(vm.score.reasons.begin(), vm.score.reasons.end(), *q.reason) ==
                      vm.score.reasons.end()) {
    return false;
  }
  return ContainsIgnoringCase(vm.name, q.name) || ContainsIgnoringCase(vm.uuid, q.name);
}

// The score as the page shows it (whole points); NaN sorts below 0.
double ShownScore(const VmView& vm) {
  return std::isnan(vm.score.score) ? -1 : std::round(vm.score.score);
}

// Worst first: lowest score as shown (so rows that read "10" are ordered by
// band and name, not by decimals the reader cannot see), then the worse
// band, then name, uuid.
bool WorseFirst(const VmView* a, const VmView* b) {
  const double sa = ShownScore(*a);
  const double sb = ShownScore(*b);
  if (sa != sb) return sa < sb;
  if (a->score.band != b->score.band) return a->score.band > b->score.band;
  if (a->name != b->name) return a->name < b->name;
  return a->uuid < b->uuid;
}

struct BandCounts {
  std::array<size_t, 3> n{};  // indexed by Band
  size_t total = 0;
  void Add(scoring::Band b) {
    ++n[std::clamp(static_cast<int>(b), 0, 2)];
    ++total;
  }
};

struct Selection {
  std::vector<const VmView*> page;  // rows to render, worst first
  size_t matching = 0;
  BandCounts all, matched;
  std::array<size_t, scoring::kReasonCount> reason_counts{};  // over every VM
};

Selection Select(const Snapshot& s, const StatusQuery& q) {
  Selection sel;
  std::vector<const VmView*> match;
  match.reserve(s.vms.size());
  for (const auto& vm : s.vms) {
    sel.all.Add(vm.score.band);
    for (auto r : vm.score.reasons) {
      const int i = static_cast<int>(r);
      if (i >= 0 && i < scoring::kReasonCount) ++sel.reason_counts[i];
    }
    if (!Matches(vm, q)) continue;
    sel.matched.Add(vm.score.band);
    match.push_back(&vm);
  }
  sel.matching = match.size();
  if (q.offset >= match.size()) return sel;
  const size_t end = q.offset + std::min(q.limit, match.size() - q.offset);
  std::partial_sort(match.begin(), match.begin() + static_cast<std::ptrdiff_t>(end), match.end(),
                    WorseFirst);
  sel.page.assign(match.begin() + static_cast<std::ptrdiff_t>(q.offset),
                  match.begin() + static_cast<std::ptrdiff_t>(end));
  return sel;
}

// A link to the page with `q`'s filters at `offset` ("?band=bad&offset=100").
std::string Href(const StatusQuery& q, size_t offset) {
  std::string p;
  auto add = [&p](std::string_view k, std::string_view v) {
    p += (p.empty() ? "?" : "&") + std::string(k) + "=" + UrlEncode(v);
  };
  if (!q.name.empty()) add("q", q.name);
  if (q.reason) add("reason", scoring::ReasonName(*q.reason));
  if (q.band) add("band", scoring::BandName(*q.band));
  if (!q.group.empty()) add("group", q.group);
  if (q.limit != kStatusDefaultLimit) add("limit", std::to_string(q.limit));
  if (offset != 0) add("offset", std::to_string(offset));
  return Escape(p.empty() ? "?" : p);
}

// ---- HTML ----

constexpr const char* kStyle =
    "*{box-sizing:border-box}"
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;"
    "max-width:1500px;padding:.8em 1.2em;color:#1f2328;background:#fff}"
    "h1{font-size:1.35em;margin:.2em 0}h2{font-size:1.1em;margin:1.1em 0 .4em}"
    "a{color:#0a58ca}nav a{margin-right:.8em}.meta,.mute{color:#59636e}.meta{margin:.2em 0}"
    ".problems{border:1px solid #b3261e;background:#fdf0ef;padding:.4em 1em;border-radius:6px}"
    ".problems li{overflow-wrap:anywhere}"
    "dl.host{display:grid;grid-template-columns:max-content 1fr;gap:.25em 1.2em;margin:0}"
    "dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}"
    ".summary{font-size:1.05em}.summary a{text-decoration:none}"
    "form{display:flex;flex-wrap:wrap;gap:.5em .9em;align-items:flex-end;background:#f3f4f6;"
    "padding:.6em .8em;border-radius:6px;margin:.6em 0}"
    "label{display:flex;flex-direction:column;font-size:.85em;color:#3d444d}"
    "input,select,button{font:inherit;font-size:1rem;padding:.25em .4em;max-width:100%}"
    "input[type=search]{width:16em}input[type=number]{width:6em}"
    "table{border-collapse:collapse}table.vms{min-width:60%}"
    "table.groups{table-layout:fixed;width:100%;max-width:52em}table.groups th,table.groups "
    "td{white-space:normal;overflow-wrap:anywhere}table.groups th:first-child{width:34%}"
    "th,td{padding:.3em .6em;border-bottom:1px solid #d8dee4;text-align:left;vertical-align:top}"
    "th{background:#f3f4f6;font-weight:600;white-space:nowrap}th.n{text-align:right}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    "td.vm{overflow-wrap:anywhere;min-width:9em;max-width:18em;font-weight:600}td.why{font-size:."
    "9em}"
    "td.why a{white-space:nowrap;text-decoration:none;background:#eef1f4;color:#1f2328;"
    "border-radius:4px;padding:0 .35em;line-height:1.8}td.why a:hover{text-decoration:underline}"
    "tr.r-bad td:first-child{box-shadow:inset 4px 0 #b3261e}"
    "tr.r-degraded td:first-child{box-shadow:inset 4px 0 #c98a00}"
    "tr.r-good td:first-child{box-shadow:inset 4px 0 #17662c}td.agent{white-space:nowrap}"
    ".good{color:#17662c}.degraded{color:#8a5a00;font-weight:600}"
    ".bad{color:#b3261e;font-weight:600}small{display:block;color:#59636e;overflow-wrap:anywhere}"
    ".pager{display:flex;flex-wrap:wrap;gap:.4em 1em;align-items:center;margin:.6em 0}"
    "footer{margin-top:1.5em;font-size:.85em;color:#59636e}"
    "@media (max-width:720px){body{padding:.5em .7em}"
    "dl.host{grid-template-columns:1fr}dd{margin-bottom:.3em}"
    "table.vms thead{display:none}"
    "table.vms,table.vms tbody{display:block;width:100%;min-width:0}"
    "table.vms tr{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));"
    "border:1px solid #d8dee4;border-radius:6px;margin:.5em 0;padding:.3em 0}"
    "table.vms td{display:block;border:0;padding:.1em .7em;text-align:left;white-space:normal}"
    "table.vms td.vm,table.vms td.why{grid-column:1/-1;max-width:none}"
    "td[data-l=Score]{order:1}td[data-l=Band]{order:2}td[data-l=Offset]{order:3}"
    "td[data-l=Uncertainty]{order:4}td[data-l=State]{order:5}td[data-l=Agent]{order:6}"
    "td[data-l='Last sample']{order:7}td.why{order:8}"
    "table.vms td::before{content:attr(data-l) ': ';color:#59636e;font-weight:400}"
    "table.vms td.vm{font-weight:600}table.vms td.vm::before{content:''}"
    ".pager>span:first-child{flex:1 1 100%}.pager a{padding:.3em 0}"
    "input[type=search]{width:100%}label.q{flex:1 1 100%}}";

void AppendHead(const Snapshot& s, int64_t now_real_ns, const std::string& telemetry_path,
                std::string& h) {
  h += "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
       "<title>vmtime-exporter status</title><style>";
  h += kStyle;
  h += "</style></head><body><header><h1>vmtime-exporter</h1><nav><a href=\"" +
       Escape(telemetry_path) +
       "\">Metrics</a><a href=\"/api/v1/targets\">JSON</a><a href=\"/healthz\">healthz</a>"
       "<a href=\"/readyz\">readyz</a></nav><p class=\"meta\">Version " +
       Escape(kVersion) + " (" + Escape(kRevision) + "). Page generated " + FormatUtc(now_real_ns) +
       "; ";
  if (s.built_real_ns > 0) {
    h += "data from the snapshot of " + FormatUtc(s.built_real_ns) + " (" +
         FormatAge(now_real_ns, s.built_real_ns) + ").";
  } else {
    h += "no collection round has finished yet.";
  }
  h += "</p></header>";
}

void AppendProblems(const std::vector<std::string>& problems, std::string& h) {
  if (problems.empty()) return;
  h += "<div class=\"problems\" role=\"alert\"><p>Some of the page's parameters were not "
       "used:</p><ul>";
  for (const auto& p : problems) h += "<li>" + Escape(p) + "</li>";
  h += "</ul></div>";
}

std::string CollectorError(const Snapshot& s, std::string_view name, int64_t now_real_ns) {
  const CollectorStatus* c = FindCollector(s, name);
  if (c == nullptr || c->success) return "";
  return ": " + Escape(c->error.empty() ? "failed" : c->error) + " " +
         Muted("(" + FormatAge(now_real_ns, c->last_run_real_ns) + ")");
}

void AppendHostReference(const Snapshot& s, std::string& h) {
  h += "<dt>Host clock</dt><dd>";
  if (!s.host_reference) {
    h += "unknown (neither chronyd nor the kernel clock was read)</dd>";
    return;
  }
  const auto& ref = *s.host_reference;
  const std::string who = ref.source == "chrony"   ? "chronyd"
                          : ref.source == "kernel" ? "the kernel (adjtimex)"
                                                   : Escape(ref.source);
  h += ref.state == scoring::SyncState::kSynchronised     ? std::string("synchronised")
       : ref.state == scoring::SyncState::kUnsynchronised ? Bad("unsynchronised")
                                                          : Bad("sync state unknown");
  h += " according to " + who;
  if (ref.stratum) h += ", stratum " + std::to_string(*ref.stratum);
  if (ref.offset_s) h += ", host &minus; UTC " + FormatSignedDuration(*ref.offset_s);
  if (ref.root_distance_s) h += ", root distance " + Magnitude(*ref.root_distance_s);
  h += " " + Muted("(the reference every VM's score uses)") + "</dd>";
}

void AppendChrony(const Snapshot& s, int64_t now_real_ns, std::string& h) {
  const CollectorStatus* c = FindCollector(s, "chrony");
  h += "<dt>chronyd</dt><dd>";
  if (c == nullptr && !s.chrony) {
    h += Muted("not collected") + "</dd>";
    return;
  }
  if (s.chrony_up && s.chrony) {
    const auto& t = s.chrony->tracking;
    h += "answering: stratum " + std::to_string(t.stratum) + ", reference " +
         Escape(t.reference_name.empty() ? "none" : t.reference_name) + ", system time " +
         FormatSignedDuration(t.system_time_offset_s) + " (host &minus; true), leap " +
         (t.leap_status == 3 ? Bad("unsynchronised") : std::to_string(t.leap_status)) + "</dd>";
    return;
  }
  h += Bad("not answering") + CollectorError(s, "chrony", now_real_ns);
  if (s.chrony) {
    h += " " + Muted("last good reading " + FormatAge(now_real_ns, s.chrony->measured_real_ns));
  }
  h += "</dd>";
}

void AppendTimexNtp(const Snapshot& s, int64_t now_real_ns, std::string& h) {
  if (s.timex) {
    h += "<dt>Kernel clock</dt><dd>" +
         (s.timex->synchronised ? std::string("synchronised")
                                : Bad("unsynchronised") + " (STA_UNSYNC set or TIME_ERROR)") +
         ", maximum error " + Magnitude(s.timex->max_error_s) + ", estimated error " +
         Magnitude(s.timex->est_error_s) + "</dd>";
  } else if (const std::string err = CollectorError(s, "timex", now_real_ns); !err.empty()) {
    h += "<dt>Kernel clock</dt><dd>" + Bad("not read") + err + "</dd>";
  }
  if (!s.ntp) return;
  size_t usable = 0;
  std::string failing;
  for (const auto& srv : s.ntp->servers) {
    if (srv.usable) {
      ++usable;
    } else {
      failing +=
          "<br>" + Escape(srv.server) + ": " + Escape(srv.error.empty() ? "not usable" : srv.error);
    }
  }
  h +=
      "<dt>Upstream NTP</dt><dd>" +
      (usable == 0 && s.ntp_configured > 0 ? Bad(std::to_string(usable)) : std::to_string(usable)) +
      " of " + CountNoun(s.ntp_configured, "server", "servers") + " usable" + failing + "</dd>";
}

void AppendLibvirt(const Snapshot& s, int64_t now_real_ns, std::string& h) {
  if (!s.libvirt_enabled) {
    h += "<dt>libvirt</dt><dd>" + Muted("not collected") + "</dd>";
    return;
  }
  h += "<dt>libvirt</dt><dd>";
  h += s.libvirt_connected ? std::string("connected") : Bad("not connected");
  h += CollectorError(s, "libvirt", now_real_ns);
  h += ", " + CountNoun(s.vms.size(), "domain", "domains") + "</dd>";
}

void AppendHost(const Snapshot& s, int64_t now_real_ns, std::string& h) {
  h += "<section><h2>Host</h2><dl class=\"host\">";
  AppendHostReference(s, h);
  AppendChrony(s, now_real_ns, h);
  AppendTimexNtp(s, now_real_ns, h);
  AppendLibvirt(s, now_real_ns, h);
  for (const auto& c : s.collectors) {
    if (c.success || c.name == "chrony" || c.name == "libvirt" || c.name == "timex") continue;
    h += "<dt>" + Escape(c.name) + " collector</dt><dd>" + Bad("failing") +
         CollectorError(s, c.name, now_real_ns) + "</dd>";
  }
  if (!s.reload.last_successful) {
    h += "<dt>Configuration</dt><dd>" + Bad("the last reload failed") +
         "; the previous configuration is running (see the log)</dd>";
  }
  h += "</dl></section>";
}

std::string BandLink(scoring::Band b, size_t n) {
  const std::string name(scoring::BandName(b));
  return "<a class=\"" + name + "\" href=\"?band=" + name + "\">" + Grouped(n) + " " + name +
         "</a>";
}

void AppendSummary(const Selection& sel, std::string& h) {
  const auto& n = sel.all.n;
  h += "<section><h2>Virtual machines</h2><p class=\"summary\">" +
       CountNoun(sel.all.total, "VM", "VMs") + ": " +
       BandLink(scoring::Band::kBad, n[static_cast<int>(scoring::Band::kBad)]) + ", " +
       BandLink(scoring::Band::kDegraded, n[static_cast<int>(scoring::Band::kDegraded)]) + ", " +
       BandLink(scoring::Band::kGood, n[static_cast<int>(scoring::Band::kGood)]) + ".</p>";
}

void AppendOption(std::string_view value, const std::string& label, bool selected, std::string& h) {
  h += "<option value=\"" + Escape(value) + "\"" + (selected ? " selected" : "") + ">" + label +
       "</option>";
}

void AppendForm(const StatusQuery& q, const Selection& sel, std::string& h) {
  h += "<form method=\"get\" action=\"\"><label class=\"q\">Name or uuid contains"
       "<input type=\"search\" name=\"q\" maxlength=\"" +
       std::to_string(kStatusMaxQueryChars) + "\" value=\"" + Escape(q.name) +
       "\"></label><label>Reason<select name=\"reason\">";
  AppendOption("", "any", !q.reason, h);
  for (int r = 0; r < scoring::kReasonCount; ++r) {
    const auto reason = static_cast<scoring::Reason>(r);
    const std::string name(scoring::ReasonName(reason));
    AppendOption(name, name + " (" + Grouped(sel.reason_counts[r]) + ")", q.reason == reason, h);
  }
  h += "</select></label><label>Band<select name=\"band\">";
  AppendOption("", "any", !q.band, h);
  for (auto b : {scoring::Band::kBad, scoring::Band::kDegraded, scoring::Band::kGood}) {
    AppendOption(scoring::BandName(b), std::string(scoring::BandName(b)), q.band == b, h);
  }
  h += "</select></label><label>Group<input type=\"search\" name=\"group\" maxlength=\"" +
       std::to_string(kMaxGroupBytes) + "\" value=\"" + Escape(q.group) +
       "\"></label><label>Rows per page<input type=\"number\" name=\"limit\" min=\"1\" "
       "max=\"" +
       std::to_string(kStatusMaxLimit) + "\" value=\"" + std::to_string(q.limit) +
       "\"></label><button type=\"submit\">Apply</button><a href=\"?\">Reset</a></form>";
}

void AppendPager(const StatusQuery& q, const Selection& sel, std::string& h) {
  h += "<div class=\"pager\"><span>";
  const bool filtered = !q.name.empty() || q.reason || q.band || !q.group.empty();
  if (sel.page.empty()) {
    h += "Showing none of " + Grouped(sel.matching) + (filtered ? " matching" : "") + " " +
         (sel.matching == 1 ? "VM" : "VMs");
  } else {
    h += "Showing " + Grouped(q.offset + 1) + "&ndash;" + Grouped(q.offset + sel.page.size()) +
         " of " + Grouped(sel.matching) + (filtered ? " matching" : "") + " " +
         (sel.matching == 1 ? "VM" : "VMs");
  }
  if (filtered) {
    const auto& n = sel.matched.n;
    h += " (" + Grouped(n[2]) + " bad, " + Grouped(n[1]) + " degraded, " + Grouped(n[0]) + " good)";
  }
  h += ", worst first.</span>";
  const size_t last = sel.matching == 0 ? 0 : (sel.matching - 1) / q.limit * q.limit;
  auto link = [&](bool on, size_t offset, const char* text) {
    h += on ? "<a href=\"" + Href(q, offset) + "\">" + text + "</a>" : Muted(text);
  };
  if (sel.matching > q.limit || q.offset > 0) {
    link(q.offset > 0, 0, "&laquo; First");
    link(q.offset > 0, q.offset > q.limit ? std::min(q.offset - q.limit, last) : 0,
         "&lsaquo; Previous");
    link(q.offset + q.limit < sel.matching, q.offset + q.limit, "Next &rsaquo;");
    link(q.offset < last, last, "Last &raquo;");
  }
  h += "</div>";
}

void AppendRow(const VmView& vm, int64_t now_real_ns, std::string& h) {
  const std::string band(scoring::BandName(vm.score.band));
  char score[32];
  std::snprintf(score, sizeof(score), "%.0f", vm.score.score);
  h += "<tr class=\"r-" + band + "\"><td class=\"vm\" data-l=\"VM\" title=\"uuid " +
       Escape(vm.uuid) + "\">" + Escape(vm.name) +
       (vm.group.empty() ? std::string()
                         : "<small>group <a href=\"?group=" + UrlEncode(vm.group) + "\">" +
                               Escape(vm.group) + "</a></small>") +
       "</td><td data-l=\"State\">" + DomainStateName(vm.state) + "</td><td class=\"n " + band +
       "\" data-l=\"Score\">" + score + "</td><td class=\"" + band + "\" data-l=\"Band\">" + band +
       "</td>";
  if (vm.last_sample) {
    h += "<td class=\"n\" data-l=\"Offset\">" + FormatSignedDuration(vm.last_sample->offset_s) +
         "</td><td class=\"n\" data-l=\"Uncertainty\">" +
         FormatUncertainty(vm.last_sample->uncertainty_s) +
         "</td><td class=\"n\" data-l=\"Last sample\">" +
         FormatAge(now_real_ns, vm.last_sample->host_real_ns) + "</td>";
  } else {
    h += "<td class=\"n\" data-l=\"Offset\">&ndash;</td><td class=\"n\" "
         "data-l=\"Uncertainty\">&ndash;</td><td class=\"n\" data-l=\"Last sample\">none yet</td>";
  }
  h += "<td class=\"agent\" data-l=\"Agent\">";
  if (!vm.agent_attempted) {
    h += "not tried yet";
  } else if (vm.agent_up) {
    h += "up";
  } else {
    h += Bad("down");
    if (!vm.agent_error.empty()) h += "<small>" + Escape(vm.agent_error) + "</small>";
  }
  h += "</td><td class=\"why\" data-l=\"Reasons\">";
  for (auto r : vm.score.reasons) {
    const std::string name(scoring::ReasonName(r));
    h += "<a href=\"?reason=" + name + "\">" + name + "</a> ";
  }
  if (vm.score.reasons.empty()) h += "&ndash;";
  h += "</td></tr>";
}

// Groups with members on this host, widest spread first (Snapshot::groups
// is sorted so), at most kStatusGroupRows of them.
void AppendGroups(const Snapshot& s, std::string& h) {
  if (s.groups.empty()) return;
  h += "<section><h2>Groups</h2><table class=\"groups\"><thead><tr><th>Group</th><th "
       "class=\"n\" title=\"max minus min offset of the measured members on this host\">Spread"
       "</th><th class=\"n\" title=\"members that run and have a recent sample, of all members on "
       "this "
       "host\">Measured</th><th title=\"the member furthest behind / the member furthest "
       "ahead\">Behind / ahead</th></tr></thead><tbody>";
  const size_t n = std::min(s.groups.size(), kStatusGroupRows);
  for (size_t i = 0; i < n; ++i) {
    const GroupView& g = s.groups[i];
    const std::string spread = g.measured >= 2 ? Magnitude(g.spread_s) : "&ndash;";
    h += "<tr><td data-l=\"Group\"><a href=\"?group=" + UrlEncode(g.name) + "\">" + Escape(g.name) +
         "</a></td><td class=\"n\" data-l=\"Spread\">" + spread +
         "</td><td class=\"n\" data-l=\"Measured\">" + Grouped(static_cast<uint64_t>(g.measured)) +
         " of " + Grouped(static_cast<uint64_t>(g.members)) +
         "</td><td data-l=\"Behind / ahead\">" +
         (g.measured >= 2 ? Escape(g.min_domain) + " / " + Escape(g.max_domain) : "&ndash;") +
         "</td></tr>";
  }
  h += "</tbody></table>";
  if (s.groups.size() > n) {
    h += "<p>" +
         Muted("and " + CountNoun(s.groups.size() - n, "more group", "more groups") +
               " with a narrower spread") +
         "</p>";
  }
  h += "</section>";
}

void AppendTable(const Selection& sel, int64_t now_real_ns, std::string& h) {
  if (sel.page.empty()) return;
  h += "<table class=\"vms\"><thead><tr><th>VM</th><th>State</th><th "
       "class=\"n\">Score</th><th>Band</th>"
       "<th class=\"n\" title=\"guest clock minus host clock; positive: guest ahead\">Offset "
       "(guest &minus; host)</th><th class=\"n\" title=\"uncertainty: half the round trip of the "
       "reading\">&plusmn;</th><th class=\"n\">Last "
       "sample</th><th>Agent</th><th>Reasons</th></tr></thead><tbody>";
  for (const VmView* vm : sel.page) AppendRow(*vm, now_real_ns, h);
  h += "</tbody></table>";
}

}  // namespace

StatusQuery ParseStatusQuery(std::string_view query_string) {
  StatusQuery q;
  while (!query_string.empty()) {
    const size_t amp = query_string.find('&');
    const std::string_view pair = query_string.substr(0, amp);
    query_string = amp == std::string_view::npos ? "" : query_string.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    const std::string key = UrlDecode(pair.substr(0, eq));
    const std::string value = eq == std::string_view::npos ? "" : UrlDecode(pair.substr(eq + 1));
    ParseParameter(key, value, q);
  }
  return q;
}

std::string FormatSignedDuration(double seconds) {
  if (!std::isfinite(seconds)) return "unknown";
  if (seconds == 0) return "0 s";
  return (seconds > 0 ? "+" : "-") + Magnitude(std::fabs(seconds));
}

std::string FormatUncertainty(double seconds) {
  if (!std::isfinite(seconds)) return "unknown";
  return "\u00b1" + Magnitude(std::fabs(seconds));
}

std::string FormatAge(int64_t now_real_ns, int64_t then_real_ns) {
  const double age_s = static_cast<double>(now_real_ns - then_real_ns) / 1e9;
  const double a = std::fabs(age_s);
  char buf[64];
  if (a < 120) {
    std::snprintf(buf, sizeof(buf), "%.0f s", std::floor(a));
  } else if (a < 2 * 3600) {
    std::snprintf(buf, sizeof(buf), "%.0f min", std::floor(a / 60));
  } else if (a < 2 * 86400) {
    std::snprintf(buf, sizeof(buf), "%.1f h", a / 3600);
  } else {
    return (age_s < 0 ? "in the future (" : "") + Grouped(static_cast<uint64_t>(a / 86400)) + " d" +
           (age_s < 0 ? ")" : " ago");
  }
  return age_s < 0 ? "in the future (" + std::string(buf) + ")" : std::string(buf) + " ago";
}

std::string CountNoun(size_t n, std::string_view singular, std::string_view plural) {
  return Grouped(n) + " " + std::string(n == 1 ? singular : plural);
}

std::string FormatUtc(int64_t real_ns) {
  const std::time_t t = static_cast<std::time_t>(real_ns / kNsPerSecond);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return "unknown time";
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string RenderStatusPage(const Snapshot& s, const StatusQuery& query, int64_t now_real_ns,
                             const std::string& telemetry_path) {
  const Selection sel = Select(s, query);
  std::vector<std::string> problems = query.problems;
  if (query.offset > 0 && query.offset >= sel.matching) {
    problems.push_back("offset " + std::to_string(query.offset) + " is past the last of the " +
                       CountNoun(sel.matching, "matching VM", "matching VMs") +
                       "; use the First link.");
  }
  std::string h;
  h.reserve(16384 + sel.page.size() * 700);
  AppendHead(s, now_real_ns, telemetry_path, h);
  AppendProblems(problems, h);
  AppendHost(s, now_real_ns, h);
  AppendGroups(s, h);
  AppendSummary(sel, h);
  AppendForm(query, sel, h);
  AppendPager(query, sel, h);
  AppendTable(sel, now_real_ns, h);
  if (sel.page.size() > 20) AppendPager(query, sel, h);
  h += "</section><footer>Scores and reasons: docs/scoring.md. Offsets are the guest clock minus "
       "the host clock (positive: guest ahead); &plusmn; is the reading's uncertainty.</footer>"
       "</body></html>\n";
  return h;
}

std::string RenderStatusPage(const Snapshot& s, const std::string& telemetry_path) {
  return RenderStatusPage(s, StatusQuery{}, s.built_real_ns, telemetry_path);
}

}  // namespace vmtime::exposition
