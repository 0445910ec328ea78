// libFuzzer target: guest agent replies. The fuzz input is split into the
// replies a fake agent returns to guest-get-osinfo, guest-exec and
// guest-exec-status; RunGuestExec and ParseOsInfoReply must handle any of
// them (bad JSON, wrong types, bad base64, huge data) without crashing and
// respect the output cap; a failure always carries a message. Seeds:
// tests/fuzz/seeds/guest_status_exec_reply_fuzz (NUL-separated replies,
// including the wrong-typed "error.desc" that used to throw); dictionary:
// tests/fuzz/dict/guest_status_exec_reply_fuzz.dict. The unit test
// GuestExecTest.FuzzSeedsReplayWithoutExceptions replays the seeds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "exporter/collectors/guest_status/guest_exec.h"

namespace {

class ReplayAgent : public vmtime::guest_status::GuestAgent {
 public:
  explicit ReplayAgent(std::vector<std::string> replies) : replies_(std::move(replies)) {}
  vmtime::Result<std::string> Command(const std::string&, const std::string&, int) override {
    if (next_ >= replies_.size()) return vmtime::Error{"no more replies"};
    return replies_[next_++];
  }
  vmtime::Result<std::vector<vmtime::guest_status::RunningDomain>> ListRunning() override {
    return std::vector<vmtime::guest_status::RunningDomain>{};
  }

 private:
  std::vector<std::string> replies_;
  size_t next_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> replies;
  size_t start = 0;
  while (start <= in.size() && replies.size() < 16) {  // '\0' separates replies
    size_t end = in.find('\0', start);
    if (end == std::string::npos) end = in.size();
    replies.push_back(in.substr(start, end - start));
    start = end + 1;
  }
  (void)vmtime::guest_status::ParseOsInfoReply(replies[0]);
  ReplayAgent agent(replies);
  vmtime::FakeClock clock;
  constexpr size_t kCap = 64;
  auto o = vmtime::guest_status::RunGuestExec(
      agent, "u",
      vmtime::guest_status::GetGuestCommand(vmtime::guest_status::GuestCommandId::kChronycTracking),
      {clock.MonotonicNs() + vmtime::kNsPerSecond, kCap}, clock,
      [&clock](int64_t ns) { clock.Advance(ns); });
  if (o.out.size() > kCap || o.err.size() > kCap) std::abort();
  if (o.kind != vmtime::guest_status::GuestExecOutcome::Kind::kExited && o.message.empty()) {
    std::abort();  // every failure is named
  }
  (void)vmtime::guest_status::ParseOsInfo(replies[0], "fuzz");
  return 0;
}
