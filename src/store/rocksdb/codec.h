// Byte encodings used by the RocksDB engine: order-preserving keys and compact record values.
//
// Keys put numbers in fixed-width big-endian so that RocksDB's bytewise order is numeric order.
// Values are a one-byte format version followed by varints (zigzag for signed numbers) and
// length-prefixed strings. No JSON, no schema library: the records are few and small.
//
// Threads: pure functions, safe anywhere. Errors: decoders return false on malformed input
// (truncated, trailing bytes, unknown version); they never throw.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "store/types.h"

namespace pigeon::store::codec {

// ---- primitives --------------------------------------------------------------------------

void putBigEndian64(std::string& out, std::uint64_t v);
// Reads 8 big-endian bytes at the start of `in`; `in` must hold at least 8 bytes.
std::uint64_t getBigEndian64(std::string_view in);

void putVarint(std::string& out, std::uint64_t v);
void putSigned(std::string& out, std::int64_t v);      // zigzag varint
void putString(std::string& out, std::string_view s);  // varint length + bytes

// Consumes values from the front of a byte string. Every get returns false (and leaves the
// output untouched) if the input is truncated or malformed.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool getVarint(std::uint64_t& v);
  bool getSigned(std::int64_t& v);
  bool getString(std::string& s);
  bool getByte(std::uint8_t& b);
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

// ---- keys --------------------------------------------------------------------------------

std::string u64Key(std::uint64_t v);                                // users, groups, messages
std::string pairKey(std::uint64_t a, std::uint64_t b);              // members, user_groups, inbox
std::string userStringKey(std::uint64_t user, std::string_view s);  // devices, cursors, idempotency
// timeline: conversation bytes + '\0' + big-endian conv_seq. Conversation ids never hold a NUL
// (append() rejects them), so one conversation's keys are contiguous and ordered by seq.
std::string timelinePrefix(std::string_view conversation);
std::string timelineKey(std::string_view conversation, Seq seq);

// ---- records -----------------------------------------------------------------------------
// The id of a user, group or message lives in the key, not in the value.

std::string encodeUser(const User& u);
bool decodeUser(std::string_view in, User& u);

std::string encodeToken(const Token& t);  // token_hash lives in the key
bool decodeToken(std::string_view in, Token& t);

std::string encodeDevice(const Device& d);  // name lives in the key
bool decodeDevice(std::string_view in, Device& d);

std::string encodeGroup(const Group& g);
bool decodeGroup(std::string_view in, Group& g);

std::string encodeMessage(const Message& m);
bool decodeMessage(std::string_view in, Message& m);

// idempotency value: the original message id and the sender's inbox seq.
std::string encodeIdempotency(MsgId id, Seq sender_seq);
bool decodeIdempotency(std::string_view in, MsgId& id, Seq& sender_seq);

}  // namespace pigeon::store::codec
