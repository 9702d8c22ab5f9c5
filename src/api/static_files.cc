#include "api/static_files.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace pigeon::api {

std::string_view contentTypeFor(std::string_view path) {
  const auto dot = path.rfind('.');
  const std::string_view ext = dot == std::string_view::npos ? "" : path.substr(dot + 1);
  if (ext == "html") return "text/html; charset=utf-8";
  if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "json" || ext == "map") return "application/json";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "png") return "image/png";
  if (ext == "ico") return "image/x-icon";
  if (ext == "webp") return "image/webp";
  if (ext == "woff2") return "font/woff2";
  if (ext == "txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

Result<StaticFiles> StaticFiles::fromDirectory(const std::string& dir) {
  namespace fs = std::filesystem;
  StaticFiles out;
  std::error_code ec;
  const fs::path root = fs::path(dir).lexically_normal();
  // Only regular files inside the root are served: symbolic links are skipped (they could
  // point anywhere), and each file is keyed by its path under the root as written.
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const auto status = it->symlink_status(ec);
    if (ec) break;
    if (fs::is_symlink(status) || !fs::is_regular_file(status)) continue;
    std::ifstream in(it->path(), std::ios::binary);
    std::stringstream data;
    if (!(data << in.rdbuf()) && fs::file_size(it->path(), ec) != 0) {
      return fail(Errc::Unavailable, "cannot read " + it->path().string());
    }
    const std::string path = "/" + it->path().lexically_relative(root).generic_string();
    out.owned_[path] = data.str();
  }
  if (ec) return fail(Errc::NotFound, "cannot read web root '" + dir + "': " + ec.message());
  if (!out.owned_.contains("/index.html")) {
    return fail(Errc::NotFound, "web root '" + dir + "' has no index.html");
  }
  for (const auto& [path, data] : out.owned_) out.files_[path] = data;
  return out;
}

StaticFiles StaticFiles::fromMemory(std::span<const std::pair<std::string_view, std::string_view>> files) {
  StaticFiles out;
  for (const auto& [path, data] : files) out.files_[std::string(path)] = data;
  return out;
}

std::optional<StaticFile> StaticFiles::find(std::string_view path) const {
  if (files_.empty()) return std::nullopt;
  if (path.find("..") != std::string_view::npos || path.find('\0') != std::string_view::npos) {
    return std::nullopt;  // never a file we serve, whatever the decoding
  }
  if (path.empty() || path == "/") path = "/index.html";
  auto it = files_.find(std::string(path));
  if (it == files_.end()) {
    // A client-side route ("/chat/bob") rather than a file: the app handles it.
    const auto slash = path.rfind('/');
    if (path.find('.', slash) != std::string_view::npos) return std::nullopt;
    it = files_.find("/index.html");
    if (it == files_.end()) return std::nullopt;
  }
  const bool immutable = it->first.starts_with("/assets/");
  return StaticFile{contentTypeFor(it->first), it->second, immutable};
}

}  // namespace pigeon::api
