#include "base/host_port.h"

#include <gtest/gtest.h>

namespace pigeon {
namespace {

TEST(HostPort, ParsesTheAddressesNodesAdvertise) {
  auto tcp = hostPortOf("tcp://10.0.0.7:9090");
  ASSERT_TRUE(tcp);
  EXPECT_EQ(tcp->host, "10.0.0.7");
  EXPECT_EQ(tcp->port, 9090);
  auto wss = hostPortOf("wss://[::1]:8443/ws");
  ASSERT_TRUE(wss);
  EXPECT_EQ(wss->host, "::1");
  EXPECT_EQ(wss->port, 8443);
  auto bare = hostPortOf("127.0.0.1:19200");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->host, "127.0.0.1");
  EXPECT_EQ(bare->port, 19200);
  for (const char* bad : {"", "tcp://host", "tcp://host:", "tcp://host:0", "tcp://host:70000", "tcp://:80",
                          "tcp://h:12x"}) {
    EXPECT_FALSE(hostPortOf(bad)) << bad;
  }
}

}  // namespace
}  // namespace pigeon
