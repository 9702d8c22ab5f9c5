#include "store/rocksdb/codec.h"

namespace pigeon::store::codec {
namespace {

// Bumped when a record layout changes; decoders reject versions they do not know.
constexpr std::uint8_t kFormatV1 = 1;

std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
std::int64_t unzigzag(std::uint64_t v) {
  return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

// Starts a value with its format version.
std::string begin() {
  return std::string(1, static_cast<char>(kFormatV1));
}

bool checkVersion(Reader& r) {
  std::uint8_t version = 0;
  return r.getByte(version) && version == kFormatV1;
}

}  // namespace

void putBigEndian64(std::string& out, std::uint64_t v) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  out.append(buf, 8);
}

std::uint64_t getBigEndian64(std::string_view in) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(in[i]);
  return v;
}

void putVarint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void putSigned(std::string& out, std::int64_t v) {
  putVarint(out, zigzag(v));
}

void putString(std::string& out, std::string_view s) {
  putVarint(out, s.size());
  out.append(s);
}

bool Reader::getVarint(std::uint64_t& v) {
  std::uint64_t result = 0;
  for (std::size_t i = 0; i < in_.size() && i < 10; ++i) {
    const auto byte = static_cast<std::uint8_t>(in_[i]);
    if (i == 9 && byte > 1) return false;  // would overflow 64 bits
    result |= static_cast<std::uint64_t>(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      in_.remove_prefix(i + 1);
      v = result;
      return true;
    }
  }
  return false;
}

bool Reader::getSigned(std::int64_t& v) {
  std::uint64_t raw = 0;
  if (!getVarint(raw)) return false;
  v = unzigzag(raw);
  return true;
}

bool Reader::getString(std::string& s) {
  std::string_view saved = in_;
  std::uint64_t len = 0;
  if (!getVarint(len) || len > in_.size()) {
    in_ = saved;
    return false;
  }
  s.assign(in_.data(), static_cast<std::size_t>(len));
  in_.remove_prefix(static_cast<std::size_t>(len));
  return true;
}

bool Reader::getByte(std::uint8_t& b) {
  if (in_.empty()) return false;
  b = static_cast<std::uint8_t>(in_[0]);
  in_.remove_prefix(1);
  return true;
}

std::string u64Key(std::uint64_t v) {
  std::string k;
  k.reserve(8);
  putBigEndian64(k, v);
  return k;
}

std::string pairKey(std::uint64_t a, std::uint64_t b) {
  std::string k;
  k.reserve(16);
  putBigEndian64(k, a);
  putBigEndian64(k, b);
  return k;
}

std::string userStringKey(std::uint64_t user, std::string_view s) {
  std::string k;
  k.reserve(8 + s.size());
  putBigEndian64(k, user);
  k.append(s);
  return k;
}

std::string timelinePrefix(std::string_view conversation) {
  std::string k;
  k.reserve(conversation.size() + 9);
  k.append(conversation);
  k.push_back('\0');
  return k;
}

std::string timelineKey(std::string_view conversation, Seq seq) {
  std::string k = timelinePrefix(conversation);
  putBigEndian64(k, seq);
  return k;
}

std::string encodeUser(const User& u) {
  std::string out = begin();
  putString(out, u.username);
  putString(out, u.password_hash);
  putSigned(out, u.created_at_ms);
  return out;
}

bool decodeUser(std::string_view in, User& u) {
  Reader r(in);
  return checkVersion(r) && r.getString(u.username) && r.getString(u.password_hash) &&
         r.getSigned(u.created_at_ms) && r.done();
}

std::string encodeToken(const Token& t) {
  std::string out = begin();
  putVarint(out, t.user);
  putString(out, t.device);
  putSigned(out, t.created_at_ms);
  putSigned(out, t.expires_at_ms);
  return out;
}

bool decodeToken(std::string_view in, Token& t) {
  Reader r(in);
  return checkVersion(r) && r.getVarint(t.user) && r.getString(t.device) &&
         r.getSigned(t.created_at_ms) && r.getSigned(t.expires_at_ms) && r.done();
}

std::string encodeDevice(const Device& d) {
  std::string out = begin();
  putSigned(out, d.first_seen_ms);
  putSigned(out, d.last_login_ms);
  return out;
}

bool decodeDevice(std::string_view in, Device& d) {
  Reader r(in);
  return checkVersion(r) && r.getSigned(d.first_seen_ms) && r.getSigned(d.last_login_ms) &&
         r.done();
}

std::string encodeGroup(const Group& g) {
  std::string out = begin();
  putString(out, g.name);
  putVarint(out, g.owner);
  putSigned(out, g.created_at_ms);
  return out;
}

bool decodeGroup(std::string_view in, Group& g) {
  Reader r(in);
  return checkVersion(r) && r.getString(g.name) && r.getVarint(g.owner) &&
         r.getSigned(g.created_at_ms) && r.done();
}

std::string encodeMessage(const Message& m) {
  std::string out = begin();
  out.reserve(32 + m.conversation.size() + m.sender_device.size() + m.client_msg_id.size() +
              m.content_type.size() + m.body.size());
  putString(out, m.conversation);
  putVarint(out, m.conv_seq);
  putVarint(out, m.sender);
  putString(out, m.sender_device);
  putString(out, m.client_msg_id);
  putSigned(out, m.created_at_ms);
  putString(out, m.content_type);
  putString(out, m.body);
  return out;
}

bool decodeMessage(std::string_view in, Message& m) {
  Reader r(in);
  return checkVersion(r) && r.getString(m.conversation) && r.getVarint(m.conv_seq) &&
         r.getVarint(m.sender) && r.getString(m.sender_device) && r.getString(m.client_msg_id) &&
         r.getSigned(m.created_at_ms) && r.getString(m.content_type) && r.getString(m.body) &&
         r.done();
}

std::string encodeIdempotency(MsgId id, Seq sender_seq) {
  std::string out = begin();
  putVarint(out, id);
  putVarint(out, sender_seq);
  return out;
}

bool decodeIdempotency(std::string_view in, MsgId& id, Seq& sender_seq) {
  Reader r(in);
  return checkVersion(r) && r.getVarint(id) && r.getVarint(sender_seq) && r.done();
}

}  // namespace pigeon::store::codec
