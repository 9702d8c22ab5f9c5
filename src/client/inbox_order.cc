#include "client/inbox_order.h"

#include <algorithm>

namespace pigeon::client {

InboxOrder::Verdict InboxOrder::take(std::uint64_t seq) {
  if (known_) {
    if (seq <= last_) return Verdict::Duplicate;
    if (seq != last_ + 1) return Verdict::Gap;
  }
  last_ = seq;
  known_ = true;
  return Verdict::Deliver;
}

bool InboxOrder::startAfter(std::uint64_t from_seq) {
  if (!known_) {
    last_ = from_seq;
    known_ = true;
    return true;
  }
  // Starting at or before what we have is fine: the duplicates are dropped by take().
  if (from_seq <= last_) return true;
  last_ = from_seq;
  return false;
}

InboxEndSearch::InboxEndSearch(std::optional<std::uint64_t> start)
    : start_(start), lo_(start.value_or(0)) {}

std::optional<std::uint64_t> InboxEndSearch::nextAfter() const {
  if (!start_) return std::nullopt;  // the cursor probe
  if (!hi_) return lo_ + gap_;       // galloping up
  return lo_ + (*hi_ - lo_) / 2;     // bisecting [lo_, hi_): lo_ < hi_ here
}

void InboxEndSearch::answer(std::optional<std::uint64_t> after,
                            std::optional<std::uint64_t> first_seq, bool has_more,
                            std::uint64_t last_seq) {
  if (end_) return;
  ++probes_;
  if (!after) {
    // After the cursor: nothing means E == cursor (it never passes the end); else the message
    // is cursor + 1.
    if (!first_seq) {
      start_ = last_seq;
      end_ = last_seq;
      return;
    }
    start_ = *first_seq - 1;
    lo_ = std::max(lo_, *first_seq);
    if (!has_more) {
      end_ = *first_seq;
      return;
    }
    lo_ = std::max(lo_, *first_seq + 1);
    return;
  }
  const std::uint64_t x = *after;
  if (!first_seq) {
    if (!hi_ || x < *hi_) hi_ = x;
  } else if (!has_more) {
    end_ = x + 1;
    return;
  } else {
    lo_ = std::max(lo_, x + 2);
    if (!hi_) gap_ = gap_ == 0 ? 1 : gap_ * 2;
  }
  if (hi_ && lo_ >= *hi_) end_ = *hi_;
}

void InboxEndSearch::raiseLower(std::uint64_t seq) {
  if (end_) return;
  lo_ = std::max(lo_, seq);
  if (hi_ && lo_ >= *hi_) end_ = *hi_;
}

}  // namespace pigeon::client
