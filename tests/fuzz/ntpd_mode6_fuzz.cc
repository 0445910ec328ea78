// libFuzzer target: the ntpd mode 6 reply path over arbitrary bytes. The
// input is split into datagrams (a 2-octet length before each), fed to one
// Reassembly for READVAR association 0 with the sequence of the first two
// octets; the reassembled data then goes through both parsers (variables
// and the association list) as the client would use it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "exporter/collectors/ntpd/mode6.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using vmtime::ntpd::Reassembly;
  if (size < 2) return 0;
  const auto sequence = static_cast<uint16_t>((data[0] << 8) | data[1]);
  Reassembly r(vmtime::ntpd::kOpReadVariables, sequence, 0);
  size_t at = 2;
  bool complete = false;
  while (at + 2 <= size && !complete) {
    const size_t len = std::min<size_t>((data[at] << 8) | data[at + 1], size - at - 2);
    std::string why;
    auto outcome = r.Add(std::span<const uint8_t>(data + at + 2, len), &why);
    at += 2 + len;
    if (!outcome) {
      if (outcome.error().message.empty()) std::abort();
      return 0;
    }
    if (*outcome == Reassembly::Outcome::kNotOurs && why.empty()) std::abort();
    complete = *outcome == Reassembly::Outcome::kComplete;
  }
  // The parsers take any text, reassembled or not.
  const std::string text =
      complete ? r.data() : std::string(reinterpret_cast<const char*>(data) + 2, size - 2);
  if (complete && text.size() > vmtime::ntpd::kMaxResponseBytes) std::abort();
  if (auto vars = vmtime::ntpd::ParseVariables(text); vars) {
    auto sys = vmtime::ntpd::SystemFromVariables(*vars);
    if (sys && (sys->leap < 0 || sys->leap > 3 || sys->stratum < 0 || sys->stratum > 255)) {
      std::abort();
    }
    auto peer = vmtime::ntpd::PeerFromVariables(*vars);
    if (peer && (peer->reach < 0 || peer->reach > 255 || peer->address.empty())) std::abort();
  } else if (vars.error().message.empty()) {
    std::abort();
  }
  if (auto list = vmtime::ntpd::ParseAssociationList(text); list) {
    if (list->size() * 4 != text.size()) std::abort();
  }
  return 0;
}
