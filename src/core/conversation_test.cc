#include "core/conversation.h"

#include <gtest/gtest.h>

namespace pigeon::core {
namespace {

TEST(Conversation, DirectIdIsOrderIndependent) {
  EXPECT_EQ(directConversation(7, 3), "p:3:7");
  EXPECT_EQ(directConversation(3, 7), "p:3:7");
}

TEST(Conversation, ParsesBothForms) {
  auto d = parseConversation("p:3:7");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, ConversationRef::Kind::Direct);
  EXPECT_EQ(d->lo, 3u);
  EXPECT_EQ(d->hi, 7u);
  auto g = parseConversation("g:42");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->kind, ConversationRef::Kind::Group);
  EXPECT_EQ(g->group, 42u);
}

TEST(Conversation, RejectsMalformedIds) {
  for (const char* bad : {"", "p:", "p:1", "p:7:3", "p:0:1", "p:1:2:3", "g:", "g:0", "g:01", "g:x",
                          "x:1", "g:1 ", "g:-1", "p:1:99999999999999999999999"}) {
    auto r = parseConversation(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, Errc::BadRequest);
    }
  }
}

}  // namespace
}  // namespace pigeon::core
