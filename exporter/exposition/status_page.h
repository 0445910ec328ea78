// The HTML status page served at "/": the host's time state, collector
// errors, and one bounded page of VMs, worst first, filtered and paged by
// query parameters (?q=&reason=&band=&group=&limit=&offset=) so a link can be
// shared. Pure: the page is a function of (snapshot, parsed query, now), so
// tests render it at fixed times. It never throws on any snapshot or query;
// a parameter it cannot use is ignored and named on the page (HTML-escaped).
// Groups (docs/libvirt.md) are listed with their spread, worst first (at most
// kStatusGroupRows), each a link to its members.
//
// The page is self-contained: one <style> block, no scripts, no external
// assets, so it works under `Content-Security-Policy: default-src 'none';
// style-src 'unsafe-inline'`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "exporter/model/snapshot.h"
#include "scoring/types.h"

namespace vmtime::exposition {

inline constexpr size_t kStatusDefaultLimit = 100;   // VM rows per page
inline constexpr size_t kStatusMaxLimit = 500;       // largest accepted `limit`
inline constexpr size_t kStatusMaxQueryChars = 200;  // longest accepted `q`
inline constexpr size_t kStatusGroupRows = 20;       // groups listed, widest spread first

// The status page's query parameters after validation. Invalid values are
// replaced by their defaults and described in `problems`.
struct StatusQuery {
  std::string name;                       // q: substring of the domain name or uuid, ASCII
                                          // case-insensitive; empty: every VM
  std::optional<scoring::Reason> reason;  // reason: only VMs with this active reason
  std::optional<scoring::Band> band;      // band: only VMs in this band
  std::string group;                      // group: only members of this group (exact)
  size_t limit = kStatusDefaultLimit;     // limit: rows per page, 1..kStatusMaxLimit
  size_t offset = 0;                      // offset: rows skipped (0-based)
  std::vector<std::string> problems;      // plain text, one per ignored parameter
};

// Parses a raw query string ("q=web&band=bad", percent-encoded, '+' = space,
// no leading '?'). Never fails: see StatusQuery::problems.
StatusQuery ParseStatusQuery(std::string_view query_string);

// The page for `query` at `now_real_ns` (host CLOCK_REALTIME, ns since the
// epoch; sample ages and "generated at" are relative to it). At most
// `query.limit` VM rows are rendered, so the size does not grow with the fleet.
std::string RenderStatusPage(const Snapshot& s, const StatusQuery& query, int64_t now_real_ns,
                             const std::string& telemetry_path);

// The default page (no parameters) at the snapshot's own build time.
std::string RenderStatusPage(const Snapshot& s, const std::string& telemetry_path);

// Unit formatting used by the page, exposed for tests.
// Signed offset in µs/ms/s/min/h/d with an explicit sign ("+2.10 ms", "-8.0 min").
std::string FormatSignedDuration(double seconds);
// Unsigned magnitude with the same units, prefixed "±" ("±400 µs").
std::string FormatUncertainty(double seconds);
// An age (now - then) in whole s/min/h/d ("12 s ago"); "in the future" when negative.
std::string FormatAge(int64_t now_real_ns, int64_t then_real_ns);
// "1 domain", "2 domains", "10,000 domains".
std::string CountNoun(size_t n, std::string_view singular, std::string_view plural);
// "2026-12-01 17:05:03 UTC".
std::string FormatUtc(int64_t real_ns);

}  // namespace vmtime::exposition
