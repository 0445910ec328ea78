// Helpers to build prometheus-cpp MetricFamily values from a snapshot
// without the registry: exposition is a pure function of the snapshot.
#pragma once

#include <prometheus/metric_family.h>

#include <initializer_list>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vmtime::exposition {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Collects families in insertion order; Gauge/Counter append a sample to the
// family named `name`, creating it (with help text and type) on first use.
class FamilyBuilder {
 public:
  void Gauge(const std::string& name, const std::string& help, const Labels& labels, double value);
  void Counter(const std::string& name, const std::string& help, const Labels& labels,
               double value);
  // Ensures a family exists even with no samples (keeps HELP/TYPE stable).
  void Declare(const std::string& name, const std::string& help, prometheus::MetricType type);
  std::vector<prometheus::MetricFamily> Take() {
    index_.clear();
    return std::move(families_);
  }
  std::vector<prometheus::MetricFamily>& families() { return families_; }

 private:
  prometheus::MetricFamily& Family(const std::string& name, const std::string& help,
                                   prometheus::MetricType type);
  std::vector<prometheus::MetricFamily> families_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in families_
};

}  // namespace vmtime::exposition
