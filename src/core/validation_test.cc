#include "core/validation.h"

#include <gtest/gtest.h>

#include <string>

namespace pigeon::core {
namespace {

TEST(Validation, Usernames) {
  EXPECT_TRUE(validateUsername("bob"));
  EXPECT_TRUE(validateUsername("Alice_1.x-y"));
  EXPECT_TRUE(validateUsername(std::string(32, 'a')));
  EXPECT_FALSE(validateUsername("ab"));
  EXPECT_FALSE(validateUsername(std::string(33, 'a')));
  EXPECT_FALSE(validateUsername("bob smith"));
  EXPECT_FALSE(validateUsername("bob/../x"));
  EXPECT_FALSE(validateUsername("bób"));
  EXPECT_FALSE(validateUsername(std::string("bo\0b", 4)));
}

TEST(Validation, Passwords) {
  EXPECT_FALSE(validatePassword("1234567"));
  EXPECT_TRUE(validatePassword("12345678"));
  EXPECT_FALSE(validatePassword(std::string(1025, 'x')));
}

TEST(Validation, DevicesAndClientIds) {
  EXPECT_TRUE(validateDevice("phone-1"));
  EXPECT_FALSE(validateDevice(""));
  EXPECT_FALSE(validateDevice("my phone"));
  EXPECT_TRUE(validateClientMsgId(""));
  EXPECT_TRUE(validateClientMsgId("c-123:abc"));
  EXPECT_FALSE(validateClientMsgId("has space"));
  EXPECT_FALSE(validateClientMsgId(std::string(65, 'a')));
}

TEST(Validation, GroupNamesAllowUnicodeButNotControls) {
  EXPECT_TRUE(validateGroupName("家人 👪"));
  EXPECT_FALSE(validateGroupName(""));
  EXPECT_FALSE(validateGroupName("a\nb"));
  EXPECT_FALSE(validateGroupName("\xff\xfe"));
  EXPECT_FALSE(validateGroupName(std::string(65, 'a')));
}

TEST(Validation, Utf8) {
  EXPECT_TRUE(isValidUtf8("plain"));
  EXPECT_TRUE(isValidUtf8("\xe4\xbd\xa0\xe5\xa5\xbd"));
  EXPECT_FALSE(isValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(isValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(isValidUtf8("\xe4\xbd"));          // truncated
  EXPECT_FALSE(isValidUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
}

}  // namespace
}  // namespace pigeon::core
