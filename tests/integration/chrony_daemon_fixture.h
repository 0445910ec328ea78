// Test helpers shared by the chrony and NTP integration tests: a private
// mode-0700 temp directory, free loopback UDP ports, a chronyd instance run
// in the foreground (-d, -x: never touches the host clock) that is always
// killed and reaped, and a bounded command runner for chronyc/ntpdig.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace vmtime::testing {

// A private directory removed (recursively) on destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/vmtime-chrony-XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    path_ = p ? p : "";
    if (!path_.empty()) ::chmod(path_.c_str(), 0700);
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A UDP port on 127.0.0.1 that was free a moment ago.
inline int FreeUdpPort() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Runs `cmd` through /bin/sh with a hard time limit; returns its stdout.
inline std::string RunShell(const std::string& cmd, int timeout_s = 10) {
  const std::string full = "timeout -s KILL " + std::to_string(timeout_s) + " " + cmd;
  FILE* f = ::popen(full.c_str(), "r");
  if (f == nullptr) return "";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = ::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  ::pclose(f);
  return out;
}

inline std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream is(s);
  while (std::getline(is, cur, sep)) out.push_back(cur);
  return out;
}

// One chronyd process in the foreground, configured from `conf` text written
// to <dir>/<name>.conf; logs to <dir>/<name>.log.
class ChronyDaemon {
 public:
  ChronyDaemon(std::string dir, std::string name) : dir_(std::move(dir)), name_(std::move(name)) {}
  ~ChronyDaemon() { Stop(); }
  ChronyDaemon(const ChronyDaemon&) = delete;
  ChronyDaemon& operator=(const ChronyDaemon&) = delete;

  // Starts chronyd and waits (at most 10 s) until `ready_path` exists (its
  // command socket). Returns false when it exited or never became ready.
  bool Start(const std::string& conf, const std::string& ready_path,
             const std::vector<std::string>& extra_args = {}) {
    Stop();
    const std::string conf_path = dir_ + "/" + name_ + ".conf";
    std::ofstream(conf_path) << conf;
    const std::string log_path = dir_ + "/" + name_ + ".log";
    ::unlink(ready_path.c_str());
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<std::string> args = {"chronyd", "-u", "root", "-x", "-d", "-f", conf_path};
      args.insert(args.end(), extra_args.begin(), extra_args.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("chronyd", argv.data());
      ::_exit(127);
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < until) {
      if (std::filesystem::exists(ready_path)) return true;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // SIGTERM, then SIGKILL after 5 s; always reaps.
  void Stop() {
    if (pid_ <= 0) return;
    Resume();
    ::kill(pid_, SIGTERM);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > until) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
  }
  void Pause() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
  }
  void Resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }
  std::string Log() const {
    std::ifstream f(dir_ + "/" + name_ + ".log");
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  pid_t pid() const { return pid_; }

 private:
  std::string dir_;
  std::string name_;
  pid_t pid_ = -1;
};

}  // namespace vmtime::testing
