// The sends waiting for the server's answer, in the order the application made them. Each is
// written once per connection; after a reconnect every one still waiting is written again, in
// the same order and with the same client_msg_id (the server stores it once). Pure code.
//
// Threads: one owner; not synchronised.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "client/client.h"

namespace pigeon::client {

class Outbox {
 public:
  struct Entry {
    OutgoingMessage message;
    bool written = false;  // on the current connection
    bool retry = false;    // written on an earlier connection already
  };

  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

  void push(OutgoingMessage message);
  // The first entry not yet written on this connection, marked written; nullptr if none.
  Entry* nextToWrite();
  // The answer for `client_msg_id` came: removes and returns the first entry with that id.
  std::optional<OutgoingMessage> complete(std::string_view client_msg_id);
  // A new connection: everything left is to be written again.
  void rewind();
  // Removes everything (stop): the caller reports them.
  std::deque<Entry> takeAll();

 private:
  std::deque<Entry> entries_;
  std::size_t written_ = 0;  // entries_[0, written_) are written on this connection
};

// Makes unique client_msg_ids: "<prefix>-<counter>", the prefix random per generator (so two
// processes of the same user do not collide), at most 64 printable ASCII characters.
class ClientMsgIds {
 public:
  explicit ClientMsgIds(std::uint64_t seed);
  std::string next();

 private:
  std::string prefix_;
  std::uint64_t counter_ = 0;
};

// True if `id` is an acceptable client_msg_id: 1..64 printable ASCII characters, no spaces.
bool validClientMsgId(std::string_view id);

}  // namespace pigeon::client
