// The Prometheus text exposition format (0.0.4) written straight into one
// std::string, byte for byte as prometheus-cpp 1.0.1's TextSerializer
// writes it, without an ostream, a MetricFamily per series or an allocation
// per series:
// - a sample value is printed like printf("%.16g") (std::to_chars, general
//   format, precision 16: what the serializer's ostream with precision
//   max_digits10 - 1 prints), NaN as `Nan`, infinities as `+Inf` / `-Inf`;
// - a label value escapes backslash, double quote and newline with a
//   backslash (the text format's rule; other bytes are copied);
// - HELP text is written as given (every HELP of the exporter is a constant
//   without backslash or newline), then `# TYPE name gauge|counter`.
// tests/unit/text_writer_test.cc compares it with TextSerializer.
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <string_view>
#include <vector>

namespace vmtime::exposition {

// Appends `value` as the text format prints a sample value.
void AppendValue(std::string& out, double value);

// Appends `value` with the label-value escapes of the text format.
void AppendLabelValue(std::string& out, std::string_view value);

// Appends `# HELP` (when `help` is not empty) and `# TYPE` lines.
void AppendFamilyHeader(std::string& out, std::string_view name, std::string_view help,
                        prometheus::MetricType type);

// Appends gauge and counter families as TextSerializer would (other types
// are not written by the exporter and are skipped).
void AppendFamilies(std::string& out, const std::vector<prometheus::MetricFamily>& families);

}  // namespace vmtime::exposition
