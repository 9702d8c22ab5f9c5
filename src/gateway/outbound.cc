#include "gateway/outbound.h"

#include "core/validation.h"
#include "protocol/native.h"
#include "protocol/stomp.h"

namespace pigeon::gateway {

std::shared_ptr<const OutboundMessage> OutboundMessage::make(store::Message message,
                                                             std::string from) {
  auto out = std::make_shared<OutboundMessage>();
  out->message = std::move(message);
  out->from = std::move(from);
  const store::Message& m = out->message;
  std::string& t = out->stomp_tail;
  t.reserve(160 + m.conversation.size() + m.content_type.size() + m.body.size());
  auto header = [&t](std::string_view name, std::string_view value) {
    t += name;
    t += ':';
    protocol::appendEscaped(t, value);
    t += '\n';
  };
  header("msg-id", std::to_string(m.id));
  // Lets the sender's devices match the message to the one they are sending.
  if (!m.client_msg_id.empty()) header("client-msg-id", m.client_msg_id);
  header("conversation", m.conversation);
  header("conv-seq", std::to_string(m.conv_seq));
  header("from", out->from);
  header("sent-at", std::to_string(m.created_at_ms));
  header("content-type", m.content_type);
  header("content-length", std::to_string(m.body.size()));
  t += '\n';
  t += m.body;
  t += '\0';
  out->body_is_utf8 = core::isValidUtf8(m.body);
  return out;
}

const std::string& OutboundMessage::nativeTail() const {
  std::call_once(native_once_, [this] {
    protocol::pb::Deliver d;
    d.set_msg_id(message.id);
    d.set_client_msg_id(message.client_msg_id);
    d.set_conversation(message.conversation);
    d.set_conv_seq(message.conv_seq);
    d.set_from(from);
    d.set_sent_at_ms(message.created_at_ms);
    d.set_content_type(message.content_type);
    d.set_body(message.body);
    native_tail_ = protocol::encodeDeliverTail(d);
  });
  return native_tail_;
}

}  // namespace pigeon::gateway
