// Text helpers shared by the guest status parsers: line splitting that
// tolerates CRLF and NUL bytes, trimming, locale-independent number parsing
// (a decimal comma is accepted where a parser asks for it), and quoting of
// untrusted text for error messages. Pure functions over string_view; none
// of them reads the process locale.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmtime::guest_status {

// Splits on '\n'; strips a trailing '\r' from each line. Empty lines kept.
std::vector<std::string_view> SplitLines(std::string_view text);
std::string_view Trim(std::string_view s);
// Splits on `sep`, no quoting.
std::vector<std::string_view> SplitOn(std::string_view s, char sep);

// Whole-string integer / floating-point parses (after trimming). With
// `decimal_comma`, one ',' is read as the decimal separator. No locale,
// no exponent overflow: returns nullopt on anything else, including inf/nan.
std::optional<long long> ParseInt(std::string_view s);
std::optional<double> ParseDouble(std::string_view s, bool decimal_comma = false);
// Leading number of `s` (after trimming), e.g. "3 (secondary ...)" -> 3 or
// "0.0312500s" -> 0.03125; the rest is ignored. nullopt if none.
std::optional<long long> LeadingInt(std::string_view s);
std::optional<double> LeadingDouble(std::string_view s, bool decimal_comma = false);

// `s` quoted for an error message: about 60 characters at most, non-printable bytes as
// \xNN, so garbage never floods a log line or breaks a terminal.
std::string Quote(std::string_view s);

// `s` with ASCII A-Z lowered; other bytes unchanged (no locale).
std::string AsciiLower(std::string_view s);

// ASCII lower-case letters and digits of `s` only ("Root Delay" ->
// "rootdelay", "Stammverzögerung" -> "stammverzgerung"): labels compared
// this way survive spacing, punctuation and any code page.
std::string LabelKey(std::string_view s);

}  // namespace vmtime::guest_status
