// The text format writer (see the header).
#include "exporter/exposition/text_writer.h"

#include <charconv>
#include <cmath>

namespace vmtime::exposition {

void AppendValue(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "Nan";
    return;
  }
  if (std::isinf(value)) {
    out += value < 0 ? "-Inf" : "+Inf";
    return;
  }
  // %.16g of a double is at most 23 characters ("-1.234567890123456e-308").
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::general, 16);
  out.append(buf, r.ptr);
}

void AppendLabelValue(std::string& out, std::string_view value) {
  size_t start = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c != '\\' && c != '"' && c != '\n') continue;
    out.append(value.data() + start, i - start);
    out += '\\';
    out += c == '\n' ? 'n' : c;
    start = i + 1;
  }
  out.append(value.data() + start, value.size() - start);
}

void AppendFamilyHeader(std::string& out, std::string_view name, std::string_view help,
                        prometheus::MetricType type) {
  if (!help.empty()) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += '\n';
  }
  out += "# TYPE ";
  out += name;
  out += type == prometheus::MetricType::Counter ? " counter\n" : " gauge\n";
}

void AppendFamilies(std::string& out, const std::vector<prometheus::MetricFamily>& families) {
  for (const auto& f : families) {
    const bool counter = f.type == prometheus::MetricType::Counter;
    if (!counter && f.type != prometheus::MetricType::Gauge) continue;
    AppendFamilyHeader(out, f.name, f.help, f.type);
    for (const auto& m : f.metric) {
      out += f.name;
      if (!m.label.empty()) {
        char sep = '{';
        for (const auto& l : m.label) {
          out += sep;
          out += l.name;
          out += "=\"";
          AppendLabelValue(out, l.value);
          out += '"';
          sep = ',';
        }
        out += '}';
      }
      out += ' ';
      AppendValue(out, counter ? m.counter.value : m.gauge.value);
      if (m.timestamp_ms != 0) {
        out += ' ';
        out += std::to_string(m.timestamp_ms);
      }
      out += '\n';
    }
  }
}

}  // namespace vmtime::exposition
