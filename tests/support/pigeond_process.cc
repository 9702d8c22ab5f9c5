#include "support/pigeond_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace pigeon::test {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "pigeon-test-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool waitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(pause);  // polling interval, not a wait for an event
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

PigeondProcess::PigeondProcess(std::string data_dir, std::vector<std::string> extra_args)
    : data_dir_(std::move(data_dir)), extra_args_(std::move(extra_args)) {
  ready_file_ = data_dir_ + ".ready.json";
  log_file_ = data_dir_ + ".log";
}

PigeondProcess::~PigeondProcess() {
  if (pid_ > 0) kill9();
  std::error_code ec;
  std::filesystem::remove(ready_file_, ec);
  std::filesystem::remove(log_file_, ec);
}

void PigeondProcess::start() {
  std::error_code ec;
  std::filesystem::remove(ready_file_, ec);
  std::vector<std::string> args{PIGEOND_PATH, "--data-dir", data_dir_, "--ready-file", ready_file_};
  // The defaults, unless the test sets the flag itself (e.g. a fixed port across a restart).
  const std::pair<const char*, const char*> defaults[] = {
      {"--host", "127.0.0.1"}, {"--http-port", "0"}, {"--tcp-port", "0"},
      {"--password-cost", "min"}, {"--log-level", "info"}};
  for (const auto& [flag, value] : defaults) {
    if (std::find(extra_args_.begin(), extra_args_.end(), flag) == extra_args_.end()) {
      args.insert(args.end(), {flag, value});
    }
  }
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const int log_fd = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    // A test that crashes does not leave its pigeond running.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);

  http_port_ = 0;
  const bool ready = waitFor(
      [&] {
        int status;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          return true;  // exited: stop waiting, report below
        }
        std::ifstream in(ready_file_);
        if (!in) return false;
        std::stringstream ss;
        ss << in.rdbuf();
        boost::system::error_code jec;
        auto v = boost::json::parse(ss.str(), jec);
        if (jec) return false;
        http_port_ = static_cast<std::uint16_t>(v.at("http_port").to_number<int>());
        const int tcp = v.at("tcp_port").to_number<int>();
        tcp_port_ = tcp < 0 ? 0 : static_cast<std::uint16_t>(tcp);
        return true;
      },
      std::chrono::seconds(30));
  if (!ready || pid_ < 0 || http_port_ == 0) {
    if (pid_ > 0) kill9();
    throw std::runtime_error("pigeond did not start; its log:\n" + log());
  }
}

void PigeondProcess::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

int PigeondProcess::terminate() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string PigeondProcess::log() const {
  std::ifstream in(log_file_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace pigeon::test
