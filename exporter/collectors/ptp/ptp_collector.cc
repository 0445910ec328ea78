// ptp collector: six GETs per poll (DEFAULT, CURRENT, PARENT and
// TIME_PROPERTIES data sets, PORT_DATA_SET for every port, linuxptp's
// TIME_STATUS_NP) on a client socket kept open between polls and reopened
// after an error (ptp4l restarted, socket gone).
#include "exporter/collectors/ptp/ptp_collector.h"

#include <algorithm>
#include <exception>

namespace vmtime {
namespace {

using DataSetDecoder = Status (*)(std::span<const uint8_t>, PtpObservation&);

// The clock-level data sets, in request order.
struct ClockDataSet {
  uint16_t id;
  DataSetDecoder decode;
};
constexpr ClockDataSet kClockDataSets[] = {
    {ptp::kIdDefaultDataSet, ptp::DecodeDefaultDataSet},
    {ptp::kIdCurrentDataSet, ptp::DecodeCurrentDataSet},
    {ptp::kIdParentDataSet, ptp::DecodeParentDataSet},
    {ptp::kIdTimePropertiesDataSet, ptp::DecodeTimePropertiesDataSet},
};

// ptp4l has one port per interface; a sane bound for the answers awaited.
constexpr int kMaxPorts = 64;

}  // namespace

PtpCollector::PtpCollector(const PtpConfig& config) : config_(config) {}

Status PtpCollector::CollectInto(const CollectContext& ctx, int64_t deadline, PtpObservation& obs) {
  const std::string where = "ptp: " + config_.socket + ": ";
  for (const ClockDataSet& ds : kClockDataSets) {
    auto r = client_->Get(ds.id, ctx.clock, deadline);
    if (!r) return r.error();
    if (Status s = ds.decode(r->front().data, obs); !s) return Error{where + s.message()};
  }
  const int ports = std::clamp(obs.number_ports, 1, kMaxPorts);
  auto port_answers = client_->Get(ptp::kIdPortDataSet, ctx.clock, deadline, ports, true);
  if (!port_answers) return port_answers.error();
  for (const auto& answer : *port_answers) {
    auto port = ptp::DecodePortDataSet(answer.data);
    if (!port) return Error{where + port.error().message};
    obs.ports.push_back(std::move(*port));
  }
  std::sort(obs.ports.begin(), obs.ports.end(),
            [](const auto& a, const auto& b) { return a.port_number < b.port_number; });
  // linuxptp's own TIME_STATUS_NP: kept optional, another PTP daemon behind
  // the socket may answer NOT_SUPPORTED.
  if (auto ts = client_->Get(ptp::kIdTimeStatusNp, ctx.clock, deadline); ts) {
    if (Status s = ptp::DecodeTimeStatusNp(ts->front().data, obs); !s) {
      return Error{where + s.message()};
    }
  } else if (ts.error().message.find("NOT_SUPPORTED") == std::string::npos) {
    return ts.error();
  }
  return Status::Ok();
}

Status PtpCollector::Collect(const CollectContext& ctx, Observations& out) {
  try {
    if (!client_) {
      client_ = std::make_unique<ptp::PtpClient>(config_.socket, config_.client_dir,
                                                 static_cast<uint8_t>(config_.domain_number),
                                                 config_.timeout_s);
    }
    int64_t deadline = ctx.deadline_mono_ns;
    if (deadline <= 0) {
      deadline = ctx.clock.MonotonicNs() + SecondsToNs(std::max(config_.timeout_s, 0.001) * 6);
    }
    PtpObservation obs;
    if (Status s = CollectInto(ctx, deadline, obs); !s) {
      client_->Close();  // start afresh next time
      return s;
    }
    obs.measured_real_ns = ctx.clock.RealtimeNs();
    out.ptp = std::move(obs);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Error{std::string("ptp: unexpected error: ") + e.what()};
  } catch (...) {
    return Error{"ptp: unexpected error"};
  }
}

}  // namespace vmtime
