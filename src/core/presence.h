// Who is online: implemented by the gateway (one node) or the cluster's route store; read by
// the API. Thread-safe.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "store/types.h"

namespace pigeon::core {

class Presence {
 public:
  virtual ~Presence() = default;
  // Users with at least one live connection, as (id, username), ordered by username.
  virtual std::vector<std::pair<store::UserId, std::string>> onlineUsers() const = 0;
};

}  // namespace pigeon::core
