#include "base/metrics.h"

#include <gtest/gtest.h>

namespace pigeon {
namespace {

TEST(Metrics, RendersCountersWithLabelsInPrometheusFormat) {
  MetricsRegistry registry;
  registry.counter("pigeon_requests_total", "Requests", "route=\"sync\"").inc(3);
  registry.counter("pigeon_requests_total", "Requests", "route=\"sync\"").inc();  // same counter
  registry.counter("pigeon_requests_total", "Requests", "route=\"ack\"").inc();
  const std::string text = registry.render();
  EXPECT_NE(text.find("# TYPE pigeon_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("pigeon_requests_total{route=\"sync\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("pigeon_requests_total{route=\"ack\"} 1\n"), std::string::npos);
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  MetricsRegistry registry;
  auto& h = registry.histogram("pigeon_latency_seconds", "Latency", "", {0.001, 0.01, 0.1});
  h.observe(0.0005);
  h.observe(0.005);
  h.observe(0.05);
  h.observe(5);
  const std::string text = registry.render();
  EXPECT_NE(text.find("pigeon_latency_seconds_bucket{le=\"0.001\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("pigeon_latency_seconds_bucket{le=\"0.01\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("pigeon_latency_seconds_bucket{le=\"0.1\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("pigeon_latency_seconds_bucket{le=\"+Inf\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("pigeon_latency_seconds_count 4\n"), std::string::npos);
}

TEST(Metrics, GaugeGoesUpAndDown) {
  MetricsRegistry registry;
  auto& g = registry.gauge("pigeon_connections", "Connections");
  g.add(5);
  g.add(-2);
  EXPECT_NE(registry.render().find("pigeon_connections 3\n"), std::string::npos);
}

}  // namespace
}  // namespace pigeon
