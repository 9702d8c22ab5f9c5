#include "protocol/native.h"

namespace pigeon::protocol {
namespace {

std::size_t varintSize(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Wire type 2 (length-delimited) and 0 (varint) tags of the fields deliverHead writes.
constexpr std::uint8_t kEnvelopeDeliverTag = (pb::Envelope::kDeliverFieldNumber << 3) | 2;
constexpr std::uint8_t kDeliverSeqTag = (pb::Deliver::kSeqFieldNumber << 3) | 0;
static_assert(pb::Envelope::kDeliverFieldNumber < 16 && pb::Deliver::kSeqFieldNumber < 16,
              "one-byte tags");

}  // namespace

std::size_t putVarint(std::uint8_t* out, std::uint64_t value) {
  std::size_t n = 0;
  while (value >= 0x80) {
    out[n++] = std::uint8_t(value | 0x80);
    value >>= 7;
  }
  out[n++] = std::uint8_t(value);
  return n;
}

void NativeParser::feed(std::string_view bytes) {
  if (failed_) return;
  buf_.append(bytes);
}

NativeParser::Status NativeParser::failWith(Errc code, std::string message) {
  failed_ = true;
  error_ = Error{code, std::move(message)};
  std::string().swap(buf_);
  pos_ = 0;
  return Status::Error;
}

NativeParser::Status NativeParser::next() {
  if (failed_) return Status::Error;
  // The length prefix.
  std::uint64_t length = 0;
  std::size_t i = 0;
  for (;; ++i) {
    if (pos_ + i >= buf_.size()) return Status::NeedMore;
    if (i == kMaxVarint32Bytes) return failWith(Errc::BadRequest, "frame length is not a varint32");
    const auto byte = std::uint8_t(buf_[pos_ + i]);
    length |= std::uint64_t(byte & 0x7F) << (7 * i);
    if (!(byte & 0x80)) break;
  }
  const std::size_t prefix = i + 1;
  if (length > max_frame_) {
    return failWith(Errc::TooLarge, "frame of " + std::to_string(length) +
                                        " bytes is over the limit of " +
                                        std::to_string(max_frame_));
  }
  if (buf_.size() - pos_ - prefix < length) return Status::NeedMore;
  const char* data = buf_.data() + pos_ + prefix;
  if (!envelope_.ParseFromArray(data, int(length))) {
    return failWith(Errc::BadRequest, "frame is not a valid pigeon.v1.Envelope");
  }
  pos_ += prefix + std::size_t(length);
  if (pos_ == buf_.size()) {
    std::string().swap(buf_);  // nothing pending: an idle connection holds no buffer
    pos_ = 0;
  } else if (pos_ > 4096 && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return Status::Frame;
}

void appendNative(std::string& out, const pb::Envelope& envelope) {
  const std::size_t size = envelope.ByteSizeLong();
  std::uint8_t prefix[10];
  const std::size_t n = putVarint(prefix, size);
  const std::size_t at = out.size();
  out.resize(at + n + size);
  std::copy(prefix, prefix + n, out.data() + at);
  envelope.SerializeWithCachedSizesToArray(reinterpret_cast<std::uint8_t*>(out.data() + at + n));
}

std::string encodeDeliverTail(const pb::Deliver& deliver_without_seq) {
  return deliver_without_seq.SerializeAsString();
}

std::size_t deliverHead(std::uint8_t* out, std::uint64_t seq, std::size_t tail_size) {
  const std::size_t deliver_size = 1 + varintSize(seq) + tail_size;
  const std::size_t envelope_size = 1 + varintSize(deliver_size) + deliver_size;
  std::size_t n = putVarint(out, envelope_size);
  out[n++] = kEnvelopeDeliverTag;
  n += putVarint(out + n, deliver_size);
  out[n++] = kDeliverSeqTag;
  n += putVarint(out + n, seq);
  return n;
}

}  // namespace pigeon::protocol
