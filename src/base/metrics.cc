#include "base/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace pigeon {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size())) {
  std::sort(bounds_.begin(), bounds_.end());
  for (std::size_t i = 0; i < bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double seconds) {
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), seconds);
  if (it != bounds_.end())
    buckets_[std::size_t(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(std::uint64_t(std::max(0.0, seconds) * 1e9), std::memory_order_relaxed);
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : ",";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    out +=
        fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, bounds_[i], cumulative);
  }
  const std::uint64_t total = count_.load(std::memory_order_relaxed);
  out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, total);
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += fmt::format("{}_sum{} {}\n", name, braces,
                     double(sum_ns_.load(std::memory_order_relaxed)) / 1e9);
  out += fmt::format("{}_count{} {}\n", name, braces, total);
}

std::vector<double> latencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,   0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   10.0};
}

std::size_t MetricsRegistry::familyLocked(const std::string& name, const std::string& help,
                                          const char* type) {
  for (std::size_t i = 0; i < families_.size(); ++i) {
    if (families_[i].name == name) return i;
  }
  families_.push_back(Family{name, help, type});
  return families_.size() - 1;
}

MetricsRegistry::Entry* MetricsRegistry::findLocked(std::size_t family, const std::string& labels) {
  for (auto& e : entries_) {
    if (e.family == family && e.labels == labels) return &e;
  }
  return nullptr;
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                  const std::string& labels) {
  std::lock_guard lock(mu_);
  const auto f = familyLocked(name, help, "counter");
  if (Entry* e = findLocked(f, labels); e && e->counter) return *e->counter;
  entries_.push_back(Entry{f, labels, std::make_unique<Counter>(), nullptr, nullptr});
  return *entries_.back().counter;
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                              const std::string& labels) {
  std::lock_guard lock(mu_);
  const auto f = familyLocked(name, help, "gauge");
  if (Entry* e = findLocked(f, labels); e && e->gauge) return *e->gauge;
  entries_.push_back(Entry{f, labels, nullptr, std::make_unique<Gauge>(), nullptr});
  return *entries_.back().gauge;
}

Histogram& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                      const std::string& labels, std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  const auto f = familyLocked(name, help, "histogram");
  if (Entry* e = findLocked(f, labels); e && e->histogram) return *e->histogram;
  entries_.push_back(
      Entry{f, labels, nullptr, nullptr, std::make_unique<Histogram>(std::move(bounds))});
  return *entries_.back().histogram;
}

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (std::size_t f = 0; f < families_.size(); ++f) {
    const Family& fam = families_[f];
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", fam.name, fam.help, fam.name, fam.type);
    for (const auto& e : entries_) {
      if (e.family != f) continue;
      const std::string braces = e.labels.empty() ? "" : "{" + e.labels + "}";
      if (e.counter) out += fmt::format("{}{} {}\n", fam.name, braces, e.counter->value());
      if (e.gauge) out += fmt::format("{}{} {}\n", fam.name, braces, e.gauge->value());
      if (e.histogram) e.histogram->render(out, fam.name, e.labels);
    }
  }
  return out;
}

}  // namespace pigeon
