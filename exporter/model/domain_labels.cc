// See domain_labels.h.
#include "exporter/model/domain_labels.h"

#include <cstdint>

namespace vmtime {
namespace {

bool IsAsciiAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

// Length of the UTF-8 sequence starting at s[i] (0 when invalid: bad lead
// byte, truncated, overlong, surrogate or beyond U+10FFFF).
size_t Utf8Length(std::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) return 1;
  size_t n = 0;
  uint32_t cp = 0;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2, cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3, cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4, cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  if (cp >= 0x80 && cp < 0xA0) return 0;  // C1 control characters
  return n;
}

}  // namespace

std::string CheckGroupName(std::string_view group) {
  if (group.empty()) return "empty group name";
  if (group.size() > kMaxGroupBytes) {
    return "group name longer than " + std::to_string(kMaxGroupBytes) + " bytes";
  }
  for (char c : group) {
    if (!IsAsciiAlpha(c) && !IsAsciiDigit(c) && c != '_' && c != '.' && c != ':' && c != '-') {
      return "group name may hold only letters, digits and _ . : -";
    }
  }
  return {};
}

std::string CheckLabelName(std::string_view name) {
  if (name.empty()) return "empty label name";
  if (name.size() > kMaxLabelNameBytes) {
    return "label name longer than " + std::to_string(kMaxLabelNameBytes) + " bytes";
  }
  if (name.starts_with("__")) return "label name '" + std::string(name) + "' starts with __";
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!IsAsciiAlpha(c) && c != '_' && !(i > 0 && IsAsciiDigit(c))) {
      return "label name '" + std::string(name) + "' is not [a-zA-Z_][a-zA-Z0-9_]*";
    }
  }
  return {};
}

std::string CheckLabelValue(std::string_view value) {
  if (value.empty()) return "empty label value";
  if (value.size() > kMaxLabelValueBytes) {
    return "label value longer than " + std::to_string(kMaxLabelValueBytes) + " bytes";
  }
  for (size_t i = 0; i < value.size();) {
    const size_t n = Utf8Length(value, i);
    if (n == 0) return "label value is not valid UTF-8";
    if (n == 1 && (static_cast<uint8_t>(value[i]) < 0x20 || value[i] == 0x7F)) {
      return "label value holds a control character";
    }
    i += n;
  }
  return {};
}

}  // namespace vmtime
