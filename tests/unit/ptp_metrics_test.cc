// vmtime_host_ptp_* rendering (exposition/ptp_metrics.h): nothing while the
// collector is disabled, only vmtime_host_ptp_up 0 while ptp4l does not
// answer (no stale state), the port state enum with exactly one 1, and a
// state outside IEEE 1588's as state="unknown". The full family list against
// docs/metrics.md is exposition_test.cc's RenderedFamiliesMatchDocsMetrics.
#include <gtest/gtest.h>

#include <string>

#include "exporter/exposition/metrics.h"

namespace vmtime {
namespace {

PtpObservation Slave(PtpPortState state) {
  PtpObservation o;
  o.clock_identity = "021122.fffe.334455";
  o.grandmaster_identity = "0a0b0c.fffe.0d0e0f";
  PtpPortObservation p;
  p.port_number = 1;
  p.port_identity = "021122.fffe.334455-1";
  p.state = state;
  o.ports = {p};
  return o;
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

TEST(PtpMetrics, NothingWhileTheCollectorIsDisabled) {
  Snapshot s;
  s.ptp = Slave(PtpPortState::kSlave);
  s.ptp_up = true;  // left over: the store clears it, the renderer must not rely on it
  EXPECT_EQ(exposition::RenderText(s).find("vmtime_host_ptp_"), std::string::npos);
}

TEST(PtpMetrics, OnlyUpZeroWhilePtp4lDoesNotAnswer) {
  Snapshot s;
  s.ptp_enabled = true;
  const std::string text = exposition::RenderText(s);
  EXPECT_NE(text.find("\nvmtime_host_ptp_up 0\n"), std::string::npos) << text;
  EXPECT_EQ(Count(text, "\nvmtime_host_ptp_"), 1u) << text;
}

TEST(PtpMetrics, PortStateIsAnEnumWithOneCurrentState) {
  Snapshot s;
  s.ptp_enabled = s.ptp_up = true;
  s.ptp = Slave(PtpPortState::kListening);
  std::string text = exposition::RenderText(s);
  EXPECT_EQ(Count(text, "\nvmtime_host_ptp_port_state{"), 9u) << text;
  EXPECT_NE(
      text.find("vmtime_host_ptp_port_state{port=\"021122.fffe.334455-1\",state=\"listening\"} 1"),
      std::string::npos)
      << text;
  EXPECT_EQ(text.find("state=\"slave\"} 1"), std::string::npos);

  s.ptp = Slave(PtpPortState::kUnknown);
  text = exposition::RenderText(s);
  EXPECT_NE(text.find("state=\"unknown\"} 1"), std::string::npos) << text;
  EXPECT_EQ(Count(text, "\nvmtime_host_ptp_port_state{"), 10u);
  // No TIME_STATUS_NP answer: its two families are absent, not zero.
  EXPECT_EQ(text.find("vmtime_host_ptp_master_offset_seconds"), std::string::npos);
  EXPECT_EQ(text.find("vmtime_host_ptp_grandmaster_present"), std::string::npos);
}

}  // namespace
}  // namespace vmtime
