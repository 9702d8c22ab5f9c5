// A latency histogram with ~1.6% precision over the whole uint64 range, mergeable across
// processes: values below 128 have a bucket each; above, each power of two is split in 64.
#pragma once

#include <bit>
#include <boost/json.hpp>
#include <cstdint>
#include <vector>

namespace pigeon::bench {

class Histogram {
 public:
  void record(std::uint64_t v) {
    const std::size_t b = bucketOf(v);
    if (b >= counts_.size()) counts_.resize(b + 1, 0);
    ++counts_[b];
    ++total_;
  }
  void merge(const Histogram& other) {
    if (other.counts_.size() > counts_.size()) counts_.resize(other.counts_.size(), 0);
    for (std::size_t i = 0; i < other.counts_.size(); ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
  }
  std::uint64_t count() const { return total_; }
  // The value at quantile q (0..1): the upper edge of its bucket. 0 when empty.
  std::uint64_t quantile(double q) const {
    if (total_ == 0) return 0;
    const auto rank = std::uint64_t(q * double(total_ - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return upperOf(i);
    }
    return upperOf(counts_.size() - 1);
  }
  boost::json::array toJson() const {  // [[bucket, count], …] for the non-empty buckets
    boost::json::array out;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i]) out.push_back(boost::json::array{i, counts_[i]});
    }
    return out;
  }
  static Histogram fromJson(const boost::json::value& v) {
    Histogram h;
    for (const auto& pair : v.as_array()) {
      const auto& a = pair.as_array();
      const auto b = a[0].to_number<std::size_t>();
      const auto c = a[1].to_number<std::uint64_t>();
      if (b >= h.counts_.size()) h.counts_.resize(b + 1, 0);
      h.counts_[b] += c;
      h.total_ += c;
    }
    return h;
  }

 private:
  static std::size_t bucketOf(std::uint64_t v) {
    if (v < 128) return std::size_t(v);
    const int msb = std::bit_width(v) - 1;  // >= 7
    const int shift = msb - 6;
    return 128 + std::size_t(shift - 1) * 64 + std::size_t((v >> shift) - 64);
  }
  static std::uint64_t upperOf(std::size_t b) {
    if (b < 128) return b;
    const std::size_t shift = (b - 128) / 64 + 1;
    const std::uint64_t mantissa = 64 + (b - 128) % 64;
    return ((mantissa + 1) << shift) - 1;
  }

  std::vector<std::uint64_t> counts_;
  std::uint64_t total_ = 0;
};

}  // namespace pigeon::bench
