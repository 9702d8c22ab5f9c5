#include "client/outbox.h"

#include <random>

namespace pigeon::client {

void Outbox::push(OutgoingMessage message) {
  entries_.push_back(Entry{std::move(message)});
}

Outbox::Entry* Outbox::nextToWrite() {
  // Entries complete out of order only when the server refuses one; written ones form a
  // prefix, so scanning from written_ suffices.
  if (written_ >= entries_.size()) return nullptr;
  Entry& e = entries_[written_++];
  e.written = true;
  return &e;
}

std::optional<OutgoingMessage> Outbox::complete(std::string_view client_msg_id) {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].message.client_msg_id != client_msg_id) continue;
    OutgoingMessage m = std::move(entries_[i].message);
    if (entries_[i].written) --written_;
    entries_.erase(entries_.begin() + std::ptrdiff_t(i));
    return m;
  }
  return std::nullopt;
}

void Outbox::rewind() {
  for (std::size_t i = 0; i < written_; ++i) {
    entries_[i].written = false;
    entries_[i].retry = true;
  }
  written_ = 0;
}

std::deque<Outbox::Entry> Outbox::takeAll() {
  written_ = 0;
  return std::exchange(entries_, {});
}

ClientMsgIds::ClientMsgIds(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  prefix_ = "c";
  for (int i = 0; i < 12; ++i) prefix_ += kDigits[rng() % 36];
}

std::string ClientMsgIds::next() {
  return prefix_ + "-" + std::to_string(++counter_);
}

bool validClientMsgId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

}  // namespace pigeon::client
