#include "cluster/probe.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>

namespace pigeon::cluster {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

NodeInfo gatewayAt(const std::string& id, std::uint16_t port) {
  NodeInfo n;
  n.id = id;
  n.roles = {"gateway"};
  n.tcp = "tcp://127.0.0.1:" + std::to_string(port);
  return n;
}

TEST(LivenessProbe, AListeningGatewayIsAliveAndAClosedPortIsNot) {
  asio::io_context io;
  asio::ip::tcp::acceptor listening(io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::acceptor closed(io, {asio::ip::make_address("127.0.0.1"), 0});
  const auto closed_port = closed.local_endpoint().port();
  closed.close();  // a process that died: its port refuses
  LivenessProbe probe(500ms, 0ms);
  EXPECT_TRUE(probe.alive(gatewayAt("up", listening.local_endpoint().port())));
  EXPECT_FALSE(probe.alive(gatewayAt("down", closed_port)));
  EXPECT_FALSE(probe.alive(NodeInfo{.id = "api-only", .roles = {"api"}}));
}

TEST(LivenessProbe, ADeathIsSeenAtOnceAndRememberedForAWhile) {
  asio::io_context io;
  auto listening = std::make_unique<asio::ip::tcp::acceptor>(
      io, asio::ip::tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0});
  const std::uint16_t port = listening->local_endpoint().port();
  const NodeInfo node = gatewayAt("n", port);
  LivenessProbe probe(500ms, std::chrono::hours(1));
  EXPECT_TRUE(probe.alive(node));
  listening.reset();  // the node dies: the next login sees it
  EXPECT_FALSE(probe.alive(node));
  // It listens again, but the probe goes by its memory of the death (ZooKeeper will have
  // dropped the node by then; a restarted node has a new id).
  asio::ip::tcp::acceptor again(io, {asio::ip::make_address("127.0.0.1"), port});
  EXPECT_FALSE(probe.alive(node));
  EXPECT_TRUE(LivenessProbe(500ms, 0ms).alive(node));
}

}  // namespace
}  // namespace pigeon::cluster
