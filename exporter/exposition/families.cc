#include "exporter/exposition/families.h"

namespace vmtime::exposition {

prometheus::MetricFamily& FamilyBuilder::Family(const std::string& name, const std::string& help,
                                                prometheus::MetricType type) {
  if (auto it = index_.find(name); it != index_.end()) return families_[it->second];
  index_.emplace(name, families_.size());
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  families_.push_back(std::move(f));
  return families_.back();
}

void FamilyBuilder::Declare(const std::string& name, const std::string& help,
                            prometheus::MetricType type) {
  Family(name, help, type);
}

namespace {
prometheus::ClientMetric WithLabels(const Labels& labels) {
  prometheus::ClientMetric m;
  m.label.reserve(labels.size());
  for (const auto& [k, v] : labels) {
    prometheus::ClientMetric::Label l;
    l.name = k;
    l.value = v;
    m.label.push_back(std::move(l));
  }
  return m;
}
}  // namespace

void FamilyBuilder::Gauge(const std::string& name, const std::string& help, const Labels& labels,
                          double value) {
  auto m = WithLabels(labels);
  m.gauge.value = value;
  Family(name, help, prometheus::MetricType::Gauge).metric.push_back(std::move(m));
}

void FamilyBuilder::Counter(const std::string& name, const std::string& help, const Labels& labels,
                            double value) {
  auto m = WithLabels(labels);
  m.counter.value = value;
  Family(name, help, prometheus::MetricType::Counter).metric.push_back(std::move(m));
}

}  // namespace vmtime::exposition
