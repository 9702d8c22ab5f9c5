#include "gateway/websocket_handshake.h"

#include <gtest/gtest.h>

namespace pigeon::gateway {
namespace {

TEST(WebSocketHandshake, AcceptKeyMatchesTheRfcExample) {
  EXPECT_EQ(webSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketHandshake, AnswersStompSubprotocol) {
  auto r = webSocketHandshakeResponse(
      {"websocket", "keep-alive, Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", "13", "v10.stomp, v12.stomp"});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_NE(r->find("HTTP/1.1 101 Switching Protocols\r\n"), std::string::npos);
  EXPECT_NE(r->find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos);
  EXPECT_NE(r->find("Sec-WebSocket-Protocol: v12.stomp\r\n"), std::string::npos);
  auto none = webSocketHandshakeResponse({"websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", "13", ""});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->find("Sec-WebSocket-Protocol"), std::string::npos);
}

TEST(WebSocketHandshake, HeaderListsIgnoreCaseAndSpaces) {
  EXPECT_TRUE(headerListHas("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(headerListHas("1.0,1.1,1.2", "1.2"));
  EXPECT_TRUE(headerListHas(" 1.2 ", "1.2"));
  EXPECT_FALSE(headerListHas("1.0,1.1", "1.2"));
  EXPECT_FALSE(headerListHas("1.20", "1.2"));
  EXPECT_FALSE(headerListHas("", "1.2"));
}

TEST(WebSocketHandshake, RefusesInvalidUpgrades) {
  EXPECT_FALSE(webSocketHandshakeResponse({"", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", "13", ""}));
  EXPECT_FALSE(webSocketHandshakeResponse({"websocket", "close", "dGhlIHNhbXBsZSBub25jZQ==", "13", ""}));
  EXPECT_FALSE(webSocketHandshakeResponse({"websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", "8", ""}));
  EXPECT_FALSE(webSocketHandshakeResponse({"websocket", "Upgrade", "c2hvcnQ=", "13", ""}));
  EXPECT_FALSE(webSocketHandshakeResponse({"websocket", "Upgrade", "", "13", ""}));
}

}  // namespace
}  // namespace pigeon::gateway
