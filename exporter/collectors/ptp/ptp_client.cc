// PtpClient: socket handling and the GET exchange with sequence check and
// deadlines (see the header).
#include "exporter/collectors/ptp/ptp_client.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string_view>

namespace vmtime::ptp {
namespace {

std::atomic<uint32_t> client_counter{0};

std::string DirOf(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool FillAddress(const std::string& path, sockaddr_un& sa) {
  sa = sockaddr_un{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sa.sun_path)) return false;
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  return true;
}

constexpr std::string_view kClientPrefix = "vmtime-exporter-ptp.";

// Removes client sockets of exporters that are gone: the exporter leaves by
// std::_Exit (main.cc) without running destructors, so a socket bound by an
// earlier run can stay behind. A name's pid that no longer exists marks it.
void RemoveStaleClientSockets(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name(e->d_name);
    if (!name.starts_with(kClientPrefix)) continue;
    const std::string rest(name.substr(kClientPrefix.size()));
    char* end = nullptr;
    const long pid = std::strtol(rest.c_str(), &end, 10);
    if (pid <= 0 || end == rest.c_str() || *end != '.') continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    ::unlink((dir + "/" + std::string(name)).c_str());
  }
  ::closedir(d);
}

std::string SecondsText(int64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", NsToSeconds(ns));
  return buf;
}

}  // namespace

PtpClient::PtpClient(std::string socket_path, std::string client_dir, uint8_t domain_number,
                     double request_timeout_s)
    : socket_path_(std::move(socket_path)),
      client_dir_(std::move(client_dir)),
      domain_number_(domain_number),
      request_timeout_s_(request_timeout_s) {
  std::random_device rd;
  sequence_ = static_cast<uint16_t>(rd());
}

PtpClient::~PtpClient() { Close(); }

void PtpClient::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!client_path_.empty()) ::unlink(client_path_.c_str());
  client_path_.clear();
}

std::string PtpClient::Describe(const std::string& what, int err) const {
  std::string msg = "ptp: " + what + ": " + std::strerror(err);
  if (err == EACCES || err == EPERM) {
    msg += " (the exporter's user needs write access to " + socket_path_ + " and to " +
           (client_dir_.empty() ? DirOf(socket_path_) : client_dir_) + "; see docs/ptp.md)";
  } else if (err == ENOENT || err == ECONNREFUSED) {
    msg += " (is ptp4l running with uds_address " + socket_path_ + "?)";
  }
  return msg;
}

Status PtpClient::Open() {
  Close();
  sockaddr_un server{};
  if (!FillAddress(socket_path_, server)) {
    return Error{"ptp: bad ptp4l socket path \"" + socket_path_ + "\""};
  }
  const std::string dir = client_dir_.empty() ? DirOf(socket_path_) : client_dir_;
  RemoveStaleClientSockets(dir);
  const std::string path = dir + "/" + std::string(kClientPrefix) + std::to_string(::getpid()) +
                           "." + std::to_string(client_counter.fetch_add(1));
  sockaddr_un local{};
  if (!FillAddress(path, local)) return Error{"ptp: client socket path too long: " + path};
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return Error{Describe("socket(AF_UNIX)", errno)};
  ::unlink(path.c_str());  // a leftover of a crashed run with the same pid
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    const int err = errno;
    Close();
    return Error{Describe("bind client socket " + path, err)};
  }
  client_path_ = path;
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) {
    const int err = errno;
    Close();
    return Error{Describe("connect " + socket_path_, err)};
  }
  return Status::Ok();
}

Result<std::vector<ManagementResponse>> PtpClient::Get(uint16_t management_id, const Clock& clock,
                                                       int64_t deadline_mono_ns, int answers,
                                                       bool answers_optional) {
  if (fd_ < 0) {
    if (Status s = Open(); !s) return s.error();
  }
  const uint16_t sequence = ++sequence_;
  const std::string where = "GET " + ManagementIdName(management_id) + " to " + socket_path_;
  const std::vector<uint8_t> request = BuildGetRequest(management_id, sequence, domain_number_,
                                                       static_cast<uint16_t>(::getpid() & 0xFFFF));
  if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) < 0) {
    const int err = errno;
    Close();
    return Error{Describe("send " + where, err)};
  }
  const int64_t start = clock.MonotonicNs();
  const int64_t deadline =
      std::min(deadline_mono_ns, start + SecondsToNs(std::max(request_timeout_s_, 0.001)));
  std::vector<ManagementResponse> out;
  while (static_cast<int>(out.size()) < answers) {
    const int64_t left = deadline - clock.MonotonicNs();
    if (left <= 0) {
      if (answers_optional && !out.empty()) return out;
      return Error{"ptp: " + std::to_string(out.size()) + " of " + std::to_string(answers) +
                   " answers to " + where + " within " + SecondsText(deadline - start) +
                   " s (is ptp4l running, and ptp.domain_number its domainNumber?)"};
    }
    pollfd p{fd_, POLLIN, 0};
    const int pr =
        ::poll(&p, 1, static_cast<int>(std::min<int64_t>((left + 999'999) / 1'000'000, 1'000'000)));
    if (pr < 0) {
      if (errno == EINTR) continue;
      return Error{Describe("poll " + where, errno)};
    }
    if (pr == 0) continue;
    uint8_t buf[kMaxMessageBytes];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      const int err = errno;
      Close();
      return Error{Describe("receive answer to " + where, err)};
    }
    const std::span<const uint8_t> message(buf, static_cast<size_t>(n));
    if (MessageSequence(message) != sequence) continue;  // late answer to an earlier request
    auto r = ParseResponse(message, sequence, management_id);
    if (!r) return Error{"ptp: " + where + ": " + r.error().message};
    out.push_back(std::move(*r));
  }
  return out;
}

}  // namespace vmtime::ptp
