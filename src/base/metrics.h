// Process metrics rendered in the Prometheus text exposition format. Counters and histograms
// are lock-free to update from any thread; registration takes a lock and returns a reference
// that stays valid for the registry's lifetime.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace pigeon {

class Counter {
 public:
  void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void set(std::int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void add(std::int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Cumulative histogram of durations in seconds with fixed upper bounds.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double seconds);
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // Appends the _bucket, _sum and _count lines for `name{labels}`.
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_ns_{0};
};

// Default latency buckets: 50 µs … 10 s.
std::vector<double> latencyBuckets();

class MetricsRegistry {
 public:
  // `labels` is the inside of the braces, e.g. `route="sync",code="200"`, or empty.
  Counter& counter(const std::string& name, const std::string& help,
                   const std::string& labels = "");
  Gauge& gauge(const std::string& name, const std::string& help, const std::string& labels = "");
  Histogram& histogram(const std::string& name, const std::string& help,
                       const std::string& labels = "",
                       std::vector<double> bounds = latencyBuckets());

  std::string render() const;

 private:
  struct Family {
    std::string name, help, type;
  };
  struct Entry {
    std::size_t family;
    std::string labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  std::size_t familyLocked(const std::string& name, const std::string& help, const char* type);
  Entry* findLocked(std::size_t family, const std::string& labels);

  mutable std::mutex mu_;
  std::vector<Family> families_;
  std::deque<Entry> entries_;
};

}  // namespace pigeon
