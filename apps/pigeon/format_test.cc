#include "format.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace pigeon::console {
namespace {

client::Message message(std::string conversation, std::string from, std::string body) {
  client::Message m;
  m.seq = 7;
  m.msg_id = 12345678901234567ULL;
  m.conversation = std::move(conversation);
  m.conv_seq = 3;
  m.from = std::move(from);
  m.sent_at_ms = 1'700'000'000'000;
  m.content_type = "text/plain";
  m.body = std::move(body);
  return m;
}

TEST(ConversationNames, LabelsGroupsAndPrivateConversations) {
  ConversationNames names;
  names.setSelf(2, "alice");
  EXPECT_EQ(names.label("g:1"), "#lobby");
  EXPECT_EQ(names.label("g:99"), "#99");
  names.learnGroup(99, "family");
  EXPECT_EQ(names.label("g:99"), "#family");
  EXPECT_EQ(names.label("p:2:5"), "@#5");
  names.learnFrom(message("p:2:5", "alice", "mine says nothing"));
  EXPECT_EQ(names.label("p:2:5"), "@#5");
  names.learnFrom(message("p:2:5", "eve", "hi"));
  EXPECT_EQ(names.label("p:2:5"), "@eve");
  names.learnFrom(message("p:1:2", "bob", "hi"));  // I am the higher id
  EXPECT_EQ(names.label("p:1:2"), "@bob");
  EXPECT_EQ(names.label("p:2:2"), "@alice");  // a note to self
  EXPECT_EQ(names.label("nonsense"), "nonsense");
  EXPECT_EQ(names.directConversation(1), "p:1:2");
  EXPECT_EQ(names.directConversation(9), "p:2:9");
}

TEST(UnreadCounts, CountOnlyOtherConversationsUntilViewed) {
  UnreadCounts unread;
  unread.onIncoming("g:1", "g:1");  // the current one is being viewed
  EXPECT_EQ(unread.total(), 0u);
  unread.onIncoming("p:1:2", "g:1");
  unread.onIncoming("p:1:2", "g:1");
  unread.onIncoming("g:7", "g:1");
  EXPECT_EQ(unread.total(), 3u);
  EXPECT_EQ(unread.counts().at("p:1:2"), 2u);
  unread.viewed("p:1:2");
  EXPECT_EQ(unread.total(), 1u);
  EXPECT_FALSE(unread.counts().count("p:1:2"));
}

TEST(Format, TimeIsShortForToday) {
  const std::int64_t now = 1'700'000'000'000;
  EXPECT_EQ(formatTime(now, now).size(), 8u);                    // HH:MM:SS
  EXPECT_EQ(formatTime(now - 3 * 86'400'000, now).size(), 16u);  // YYYY-MM-DD HH:MM
}

TEST(Format, BodiesCannotDriveTheTerminal) {
  EXPECT_EQ(printableBody("text/plain", "plain 😀 text"), "plain 😀 text");
  EXPECT_EQ(printableBody("text/plain", "red \x1b[31mtext\x07"), "red ?[31mtext?");
  EXPECT_EQ(printableBody("text/plain",
                          "c1 \xC2\x9B"
                          "2J"),
            "c1 ?2J");
  EXPECT_EQ(printableBody("text/plain", "bad \xFF byte"), "bad \xEF\xBF\xBD byte");
  EXPECT_EQ(printableBody("text/plain", "two\nlines", 2), "two\n  lines");
  EXPECT_EQ(printableBody("application/octet-stream", "\x01\x02\x03"),
            "[application/octet-stream, 3 bytes]");
}

TEST(Format, MessageLine) {
  ConversationNames names;
  names.setSelf(1, "alice");
  const auto m = message("g:1", "bob", "hello");
  const std::string line = formatMessage(m, names, m.sent_at_ms);
  EXPECT_EQ(line.substr(10), " #lobby bob: hello");
  EXPECT_EQ(line[0], '[');
}

TEST(Format, JsonLineRoundTrips) {
  ConversationNames names;
  names.setSelf(1, "alice");
  auto m = message("g:1", "bob", "line \"one\"\nline two");
  m.client_msg_id = "c-1";
  const std::string line = messageJsonLine(m, names);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto v = boost::json::parse(line);
  EXPECT_EQ(v.at("label").as_string(), "#lobby");
  EXPECT_EQ(v.at("msg_id").as_string(), "12345678901234567");
  auto back = messageFromJson(v);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->body, m.body);
  EXPECT_EQ(back->msg_id, m.msg_id);
  EXPECT_EQ(back->seq, 7u);
  EXPECT_EQ(back->conv_seq, 3u);
  EXPECT_EQ(back->client_msg_id, "c-1");
  EXPECT_FALSE(messageFromJson(boost::json::parse(R"({"msg_id":"1"})")));
  EXPECT_FALSE(messageFromJson(boost::json::parse("[]")));
}

}  // namespace
}  // namespace pigeon::console
