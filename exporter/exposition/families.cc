// FamilyBuilder and its Family handles (see the header).
#include "exporter/exposition/families.h"

#include <spdlog/spdlog.h>

#include <utility>

namespace vmtime::exposition {

Family FamilyBuilder::Declare(const std::string& name, const std::string& help,
                              prometheus::MetricType type) {
  if (auto it = index_.find(name); it != index_.end()) return Family(this, it->second);
  index_.emplace(name, families_.size());
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  families_.push_back(std::move(f));
  return Family(this, families_.size() - 1);
}

Family FamilyBuilder::Gauge(const std::string& name, const std::string& help) {
  return Declare(name, help, prometheus::MetricType::Gauge);
}

Family FamilyBuilder::Counter(const std::string& name, const std::string& help) {
  return Declare(name, help, prometheus::MetricType::Counter);
}

std::vector<prometheus::MetricFamily> FamilyBuilder::Take() {
  std::vector<prometheus::MetricFamily> out = std::move(families_);
  families_.clear();
  index_.clear();
  std::erase_if(out, [](const prometheus::MetricFamily& f) { return f.metric.empty(); });
  return out;
}

void Family::Add(const Labels& labels, double value) const {
  prometheus::MetricFamily& family = owner_->families_[index_];
  prometheus::ClientMetric m;
  m.label.reserve(labels.size());
  for (const auto& [k, v] : labels) {
    prometheus::ClientMetric::Label l;
    l.name = k;
    l.value = v;
    m.label.push_back(std::move(l));
  }
  if (family.type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  family.metric.push_back(std::move(m));
}

const std::string& Family::name() const { return owner_->families_[index_].name; }

void LogRenderFailure(const char* what, const std::exception* e) {
  if (e != nullptr) {
    spdlog::error("rendering {} failed: {}", what, e->what());
  } else {
    spdlog::error("rendering {} failed", what);
  }
}

}  // namespace vmtime::exposition
