// Static files served at / (the web client): loaded once into memory, from the assets
// embedded in the binary or from a directory (--web-root). Immutable after construction, so
// lookups are thread-safe.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/error.h"

namespace pigeon::api {

struct StaticFile {
  std::string_view content_type;
  std::string_view body;
  bool immutable = false;  // content-hashed asset: cacheable for a year
};

class StaticFiles {
 public:
  // Files under `dir`, read now. Errors: NotFound if it has no index.html.
  static Result<StaticFiles> fromDirectory(const std::string& dir);
  // (path, data) pairs whose data outlives this object (embedded in the binary).
  static StaticFiles fromMemory(std::span<const std::pair<std::string_view, std::string_view>> files);

  // The file for a request path: "/" is /index.html; a path with no file extension that is not
  // a file is the single-page app's route and gets /index.html too. Nullopt: 404.
  std::optional<StaticFile> find(std::string_view path) const;
  bool empty() const { return files_.empty(); }
  std::size_t size() const { return files_.size(); }

 private:
  std::unordered_map<std::string, std::string> owned_;  // from a directory
  std::unordered_map<std::string, std::string_view> files_;
};

std::string_view contentTypeFor(std::string_view path);

}  // namespace pigeon::api
