// Builds prometheus-cpp MetricFamily values from a snapshot without the
// registry: exposition is a pure function of the snapshot.
//
// A metric name is written once: FamilyBuilder::Gauge/Counter declare a
// family (name, HELP, TYPE) and return the Family handle that is the only way
// to append its samples. Families appear in the output in declaration order.
// A family left without samples is not rendered (see Take()).
#pragma once

#include <prometheus/metric_family.h>

#include <cstddef>
#include <exception>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vmtime::exposition {

using Labels = std::vector<std::pair<std::string, std::string>>;

class FamilyBuilder;

// Handle to one declared family. Cheap to copy; valid while its builder
// lives and until Take().
class Family {
 public:
  // Appends one sample (gauge or counter value by the family's type).
  void Add(const Labels& labels, double value) const;
  // An unlabelled sample.
  void Add(double value) const { Add({}, value); }
  const std::string& name() const;

 private:
  friend class FamilyBuilder;
  Family(FamilyBuilder* owner, size_t index) : owner_(owner), index_(index) {}
  FamilyBuilder* owner_;
  size_t index_;  // position in owner_->families_
};

class FamilyBuilder {
 public:
  // Declares a family and returns its handle. Declaring a name again returns
  // the first declaration's handle (one HELP/TYPE block per name, as the text
  // format requires).
  Family Gauge(const std::string& name, const std::string& help);
  Family Counter(const std::string& name, const std::string& help);

  // Every declared family that has at least one sample, in declaration order.
  // Families without samples are dropped: the Prometheus text format allows
  // a bare HELP/TYPE block, but client_golang never emits one (its text
  // encoder refuses a family without metrics), promtool's parser (expfmt)
  // discards them before it lints, and a family with no series answers no
  // query. "Absent" is how docs/metrics.md says "unknown".
  std::vector<prometheus::MetricFamily> Take();

 private:
  friend class Family;
  Family Declare(const std::string& name, const std::string& help, prometheus::MetricType type);
  std::vector<prometheus::MetricFamily> families_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in families_
};

// Logs a rendering failure of `what` (with the exception's text when there
// is one).
void LogRenderFailure(const char* what, const std::exception* e);

// Runs `render`, logging and swallowing any exception: exposition must not
// throw into civetweb or prometheus-cpp, and one failing section must not
// take the others with it.
template <typename F>
void RenderGuarded(const char* what, F&& render) noexcept {
  try {
    render();
  } catch (const std::exception& e) {
    LogRenderFailure(what, &e);
  } catch (...) {
    LogRenderFailure(what, nullptr);
  }
}

}  // namespace vmtime::exposition
