// The receive side's ordering rule: the application sees every inbox seq exactly once, in
// order. A seq at or below the last one handed over is a duplicate (dropped); one above the next
// expected is a gap (the client resyncs from the last one). Pure code.
//
// Threads: one owner; not synchronised.
#pragma once

#include <cstdint>

namespace pigeon::client {

class InboxOrder {
 public:
  enum class Verdict { Deliver, Duplicate, Gap };

  // `last`: the last seq already handed over; 0 with `known` false: not known yet (the first
  // message then sets the base — a STOMP subscription after the server's cursor gives no start).
  explicit InboxOrder(std::uint64_t last = 0, bool known = false) : last_(last), known_(known) {}

  // What to do with a message of `seq`; Deliver also takes it (last() becomes seq).
  Verdict take(std::uint64_t seq);
  // The server announced where the stream starts (TCP SyncStarted.from_seq). Returns false if that
  // skips messages after a known last() (a gap that a resync cannot fill); the base moves anyway.
  bool startAfter(std::uint64_t from_seq);

  std::uint64_t last() const { return last_; }
  bool known() const { return known_; }

 private:
  std::uint64_t last_;
  bool known_;
};

}  // namespace pigeon::client
