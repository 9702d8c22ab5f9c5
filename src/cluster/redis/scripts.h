// Internal to the Redis engine: the Lua scripts that read and change routes and presence, each
// atomic on the server. See redis_cluster.h for the keys and the rules they keep.
//
// A route is a field of the user's hash `<prefix>route:<user>`: device → the value
//   "<expires_ms>|<login_ms>|<conn>|<node>|<username>"
// (decimal numbers; node ids have no '|'; the username, last, may have anything). Redis 7.0 has
// no expiry per hash field, so the scripts keep it in the value: a field whose expires_ms is not
// after the server's TIME is not a route, and the scripts that write a user's hash purge such
// fields. The hash itself expires (PEXPIREAT) with its longest lease, so a crashed node's routes
// vanish even if nobody touches them again.
//
// The online set `<prefix>online` is a sorted set of "<username>\0<user>" scored by the user's
// longest lease (expires_ms): written with the hash in the same script, and read after removing
// the members whose score is past (ZREMRANGEBYSCORE -inf now), so an expired user never shows.
//
// All times are the server's TIME, never a node's clock: nodes whose clocks disagree still agree
// on when a lease ends. login_ms (the ordering of two connections) is the nodes' wall clock, as
// the Directory contract says.
#pragma once

#include <string_view>

namespace pigeon::cluster::redis::scripts {

// Shared by every script. Comparisons are byte-wise: Lua's `<` on strings follows the server's
// locale (strcoll), and the order must be the same as the nodes' std::string order.
inline constexpr std::string_view kPrelude = R"lua(
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function bytesLess(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
-- Decimal numbers without leading zeros (uint64 does not fit a Lua number exactly).
local function decLess(a, b)
  if #a ~= #b then return #a < #b end
  return bytesLess(a, b)
end
local function decode(v)
  local exp, login, conn, node, username = string.match(v, '^(%d+)|(%d+)|(%d+)|([^|]*)|(.*)$')
  if not exp then return nil end
  return {exp = tonumber(exp), login = login, conn = conn, node = node, username = username}
end
local function encode(r)
  return string.format('%.0f', r.exp) .. '|' .. r.login .. '|' .. r.conn .. '|' .. r.node .. '|' .. r.username
end
local function sameRoute(a, b)
  return a.login == b.login and a.node == b.node and a.conn == b.conn
end
-- a logged in after b: ordered by (login_ms, node, conn).
local function later(a, b)
  if a.login ~= b.login then return decLess(b.login, a.login) end
  if a.node ~= b.node then return bytesLess(b.node, a.node) end
  return decLess(b.conn, a.conn)
end
-- The user's live routes (device -> route); purges the expired ones.
local function liveRoutes(key, now)
  local flat = redis.call('HGETALL', key)
  local live, dead = {}, {}
  for i = 1, #flat, 2 do
    local r = decode(flat[i + 1])
    if r and r.exp > now then live[flat[i]] = r else dead[#dead + 1] = flat[i] end
  end
  if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
  return live
end
-- After a change to the user's routes: the hash lives as long as its longest lease and the
-- user is in the online set with that score, or both go with the last route. True if gone.
local function settle(key, online, live, user, username)
  local last = 0
  for _, r in pairs(live) do
    if r.exp > last then last = r.exp end
  end
  local member = username .. '\0' .. user
  if last == 0 then
    redis.call('DEL', key)
    redis.call('ZREM', online, member)
    return true
  end
  redis.call('PEXPIREAT', key, string.format('%.0f', last))
  redis.call('ZADD', online, string.format('%.0f', last), member)
  return false
end
)lua";

// Claims (or renews) routes. KEYS: the online set, then one route hash per route.
// ARGV: lease_ms, then per route: user, device, login_ms, conn, node, username.
// Returns per route: superseded (0/1), came_online (0/1), the displaced route's value or nil.
inline constexpr std::string_view kClaim = R"lua(
local now = nowMs()
local lease = tonumber(ARGV[1])
local out = {}
for i = 2, #KEYS do
  local key = KEYS[i]
  local a = 2 + (i - 2) * 6
  local user, device = ARGV[a], ARGV[a + 1]
  local mine = {exp = now + lease, login = ARGV[a + 2], conn = ARGV[a + 3], node = ARGV[a + 4],
                username = ARGV[a + 5]}
  local live = liveRoutes(key, now)
  local cameOnline = next(live) == nil
  local current = live[device]
  if current and later(current, mine) then
    out[#out + 1] = 1
    out[#out + 1] = 0
    out[#out + 1] = false
  else
    local displaced = false
    if current and not sameRoute(current, mine) then displaced = encode(current) end
    live[device] = mine
    redis.call('HSET', key, device, encode(mine))
    settle(key, KEYS[1], live, user, mine.username)
    out[#out + 1] = 0
    out[#out + 1] = cameOnline and 1 or 0
    out[#out + 1] = displaced
  end
end
return out
)lua";

// Releases a route if it is still the device's. KEYS: the online set, the route hash.
// ARGV: user, device, login_ms, conn, node, username. Returns 1 if the user has no live route.
inline constexpr std::string_view kRelease = R"lua(
local key = KEYS[2]
local live = liveRoutes(key, nowMs())
local device = ARGV[2]
local current = live[device]
if current and sameRoute(current, {login = ARGV[3], conn = ARGV[4], node = ARGV[5]}) then
  redis.call('HDEL', key, device)
  live[device] = nil
end
return settle(key, KEYS[1], live, ARGV[1], ARGV[6]) and 1 or 0
)lua";

// KEYS: route hashes. Returns per key the values of its live routes (read-only).
inline constexpr std::string_view kLocate = R"lua(
local now = nowMs()
local out = {}
for i, key in ipairs(KEYS) do
  local live = {}
  for _, v in ipairs(redis.call('HVALS', key)) do
    local r = decode(v)
    if r and r.exp > now then live[#live + 1] = v end
  end
  out[i] = live
end
return out
)lua";

// KEYS: the online set. Drops the users whose leases all ended; returns the others' members.
inline constexpr std::string_view kOnline = R"lua(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nowMs())
return redis.call('ZRANGE', KEYS[1], 0, -1)
)lua";

}  // namespace pigeon::cluster::redis::scripts
