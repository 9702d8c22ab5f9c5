// The web client's built files (web/dist), embedded in the binary at build time, so pigeond
// serves the client with nothing else installed.
#pragma once

#include <span>
#include <string_view>

namespace pigeon::webassets {

struct Asset {
  std::string_view path;  // "/index.html", "/assets/index-3f2a.js"
  std::string_view data;
};

// Every embedded file; empty when the build had no web client to embed.
std::span<const Asset> embedded();

}  // namespace pigeon::webassets
