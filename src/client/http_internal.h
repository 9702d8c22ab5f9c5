// Parsers of the HTTP API's JSON shared by HttpApi and its tests. Never throw: missing or
// mistyped fields read as empty / zero.
#pragma once

#include <boost/json/value.hpp>

#include "client/client.h"

namespace pigeon::client {

Message parseMessageJson(const boost::json::value& v);
Result<Session> parseSessionJson(const boost::json::value& v);
Result<HistoryPage> parseHistoryJson(const boost::json::value& v);

}  // namespace pigeon::client
