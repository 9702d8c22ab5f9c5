#include "client/inbox_order.h"

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

}  // namespace pigeon::client
