// Text helpers for the guest status parsers (see parse_text.h).
#include "exporter/collectors/guest_status/parse_text.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace vmtime::guest_status {

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(start, nl - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\0')) line.remove_suffix(1);
    if (nl < text.size() || !line.empty()) lines.push_back(line);
    start = nl + 1;
  }
  return lines;
}

std::string_view Trim(std::string_view s) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\0' || c == '\v' || c == '\f';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> SplitOn(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t p = s.find(sep, start);
    if (p == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, p - start));
    start = p + 1;
  }
}

std::optional<long long> ParseInt(std::string_view s) {
  s = Trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  long long v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

namespace {

// Length of the numeric prefix of s: [+-]digits[.digits][e[+-]digits].
size_t NumberPrefix(std::string_view s, char decimal) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  if (i < s.size() && s[i] == decimal) {
    size_t j = i + 1;
    size_t frac = 0;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j, ++frac;
    if (frac > 0 || digits > 0) {
      i = j;
      digits += frac;
    }
  }
  if (digits == 0) return 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    size_t j = i + 1;
    if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
    size_t exp_digits = 0;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j, ++exp_digits;
    if (exp_digits > 0) i = j;
  }
  return i;
}

std::optional<double> ConvertNumber(std::string_view num, char decimal) {
  std::string buf(num);
  if (!buf.empty() && buf.front() == '+') buf.erase(0, 1);
  if (decimal != '.') {
    for (char& c : buf) {
      if (c == decimal) c = '.';
    }
  }
  double v = 0;
  auto [ptr, ec] = std::from_chars(buf.data(), buf.data() + buf.size(), v);
  if (ec != std::errc() || ptr != buf.data() + buf.size() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

}  // namespace

std::optional<double> ParseDouble(std::string_view s, bool decimal_comma) {
  s = Trim(s);
  char decimal = '.';
  if (decimal_comma && s.find(',') != std::string_view::npos &&
      s.find('.') == std::string_view::npos) {
    decimal = ',';
  }
  size_t n = NumberPrefix(s, decimal);
  if (n == 0 || n != s.size()) return std::nullopt;
  return ConvertNumber(s.substr(0, n), decimal);
}

std::optional<long long> LeadingInt(std::string_view s) {
  s = Trim(s);
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  return ParseInt(s.substr(0, i));
}

std::optional<double> LeadingDouble(std::string_view s, bool decimal_comma) {
  s = Trim(s);
  char decimal = '.';
  size_t n = NumberPrefix(s, '.');
  if (decimal_comma) {
    size_t nc = NumberPrefix(s, ',');
    if (nc > n) {
      n = nc;
      decimal = ',';
    }
  }
  if (n == 0) return std::nullopt;
  return ConvertNumber(s.substr(0, n), decimal);
}

std::string Quote(std::string_view s) {
  constexpr size_t kMax = 60;  // characters of the quoted text
  std::string out = "'";
  for (char ch : s) {
    if (out.size() >= kMax) {
      out += "...";
      break;
    }
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += ch;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  out += "'";
  return out;
}

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string LabelKey(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch >= 'A' && ch <= 'Z') {
      out += static_cast<char>(ch - 'A' + 'a');
    } else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) {
      out += ch;
    }
  }
  return out;
}

}  // namespace vmtime::guest_status
