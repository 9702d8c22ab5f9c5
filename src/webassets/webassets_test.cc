// The embedding generator (here run on testdata/) and StaticFiles, which serves the result.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/static_files.h"
#include "webassets/web_assets.h"

namespace pigeon {
namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(WebAssets, EmbedsEveryFileByteForByte) {
  auto assets = webassets::embedded();
  ASSERT_EQ(assets.size(), 2u);
  EXPECT_EQ(assets[0].path, "/assets/app-1a2b.js");
  EXPECT_EQ(assets[0].data, readFile(std::string(PIGEON_WEB_FIXTURE) + "/assets/app-1a2b.js"));
  EXPECT_EQ(assets[1].path, "/index.html");
  EXPECT_EQ(assets[1].data, readFile(std::string(PIGEON_WEB_FIXTURE) + "/index.html"));
}

TEST(StaticFiles, ServesIndexAssetsAndClientRoutes) {
  std::vector<std::pair<std::string_view, std::string_view>> files;
  for (const auto& a : webassets::embedded()) files.emplace_back(a.path, a.data);
  const auto web = api::StaticFiles::fromMemory(files);
  auto root = web.find("/");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->content_type, "text/html; charset=utf-8");
  EXPECT_FALSE(root->immutable);
  auto js = web.find("/assets/app-1a2b.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->content_type, "text/javascript; charset=utf-8");
  EXPECT_TRUE(js->immutable);
  auto route = web.find("/chat/bob");  // a client-side route: the app
  ASSERT_TRUE(route);
  EXPECT_EQ(route->body, root->body);
  EXPECT_FALSE(web.find("/missing.png"));
}

TEST(StaticFiles, DirectorySkipsSymlinksAndRefusesDotDot) {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / "pigeon-static-test";
  fs::remove_all(root);
  fs::create_directories(root);
  std::ofstream(root / "index.html") << "<html>";
  std::ofstream(fs::temp_directory_path() / "pigeon-static-secret.txt") << "secret";
  fs::create_symlink(fs::temp_directory_path() / "pigeon-static-secret.txt", root / "leak.txt");
  auto web = api::StaticFiles::fromDirectory(root.string());
  ASSERT_TRUE(web) << web.error().message;
  EXPECT_EQ(web->size(), 1u);  // only index.html
  EXPECT_FALSE(web->find("/leak.txt"));
  EXPECT_FALSE(web->find("/../pigeon-static-secret.txt"));
  EXPECT_FALSE(web->find("/a/../index.html"));
  fs::remove_all(root);
  fs::remove(fs::temp_directory_path() / "pigeon-static-secret.txt");
}

TEST(StaticFiles, FromDirectoryNeedsAnIndex) {
  auto ok = api::StaticFiles::fromDirectory(PIGEON_WEB_FIXTURE);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->size(), 2u);
  auto bad = api::StaticFiles::fromDirectory(std::string(PIGEON_WEB_FIXTURE) + "/assets");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::NotFound);
}

}  // namespace
}  // namespace pigeon
