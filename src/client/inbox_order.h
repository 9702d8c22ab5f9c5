// The receive side's ordering rule: the application sees every inbox seq exactly once, in
// order. A seq at or below the last one handed over is a duplicate (dropped); one above the next
// expected is a gap (the client resyncs from the last one). And InboxEndSearch: where the inbox
// ends, found with tiny HTTP sync probes, for Listener::onCaughtUp. Pure code.
//
// Threads: one owner; not synchronised.
#pragma once

#include <cstdint>
#include <optional>

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

// Finds the end of a user's inbox (its highest seq, E) after a sync started, with probes of
// `GET /api/v1/sync?after=X&limit=1` (docs/api.md), which say: no message after X (E <= X), one
// and no more (E == X + 1), or more than one (E >= X + 2) — each true at the moment the server
// answered. E only grows, one seq at a time, so:
//   * every "E >= n" stays true (a lower bound `lo`);
//   * "E <= X" was true at that moment (an upper bound `hi`, which may go stale).
// The search gallops up from the lower bound until a probe finds nothing, then bisects. It ends
// with E exactly at some probe's moment, or with hi once lo >= hi; either way the result v
// satisfies E(t) <= v <= E(now) for a probe moment t — so, when every probe was made after the
// sync started, v is at least the inbox end at the start of the sync, and every seq up to v
// exists. Under live traffic the bounds may cross, which ends the search early rather than
// chasing the end: it takes O(log backlog) probes.
//
// The first probe may leave `after` out (the sync started after the device's stored cursor,
// which the client does not know): the server then answers after the cursor, whose value the
// answer reveals (cursor()).
class InboxEndSearch {
 public:
  // `start`: the sync started after this seq (it exists, or is 0); nullopt: after the cursor.
  explicit InboxEndSearch(std::optional<std::uint64_t> start);

  // The `after` of the next probe: nullopt for the cursor probe (leave `after` out). Only while
  // !done().
  std::optional<std::uint64_t> nextAfter() const;
  // The answer to the probe made with `after` (as nextAfter() returned it): `first_seq` is the
  // seq of the one message returned (nullopt: none), `has_more` says whether more followed, and
  // `last_seq` is the answer's last_seq (the cursor when the cursor probe found nothing).
  void answer(std::optional<std::uint64_t> after, std::optional<std::uint64_t> first_seq,
              bool has_more, std::uint64_t last_seq);
  // `seq` is known to exist (it was delivered): a free lower bound.
  void raiseLower(std::uint64_t seq);

  bool done() const { return end_.has_value(); }
  std::optional<std::uint64_t> end() const { return end_; }
  // The sync's start as the search knows it: the one given, or the cursor the first probe found.
  std::optional<std::uint64_t> start() const { return start_; }
  unsigned probes() const { return probes_; }

 private:
  std::optional<std::uint64_t> start_;
  std::uint64_t lo_ = 0;             // E >= lo_, for good
  std::optional<std::uint64_t> hi_;  // E <= hi_ at some probe's moment
  std::uint64_t gap_ = 0;            // galloping: the next probe is lo_ + gap_
  std::optional<std::uint64_t> end_;
  unsigned probes_ = 0;
};

}  // namespace pigeon::client
