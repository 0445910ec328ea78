// PTP management message building and parsing (see the header).
#include "exporter/collectors/ptp/ptp_management.h"

#include <cstdio>

namespace vmtime::ptp {
namespace {

constexpr uint8_t kMessageTypeManagement = 0x0D;
constexpr uint8_t kVersionPtp = 2;
constexpr uint8_t kControlManagement = 0x04;
constexpr uint8_t kLogIntervalManagement = 0x7F;
constexpr uint8_t kActionGet = 0;
constexpr uint8_t kActionResponse = 2;
constexpr uint16_t kTlvManagement = 0x0001;
constexpr uint16_t kTlvManagementErrorStatus = 0x0002;
constexpr size_t kTlvHeaderBytes = 4;  // tlvType + lengthField

uint16_t Get16(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint16_t>((b[at] << 8) | b[at + 1]);
}
uint32_t Get32(std::span<const uint8_t> b, size_t at) {
  return (static_cast<uint32_t>(Get16(b, at)) << 16) | Get16(b, at + 2);
}
int64_t GetI64(std::span<const uint8_t> b, size_t at) {
  const uint64_t u = (static_cast<uint64_t>(Get32(b, at)) << 32) | Get32(b, at + 4);
  return static_cast<int64_t>(u);
}
void Put16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

// TimeInterval: nanoseconds * 2^16 as a signed 64-bit integer.
double TimeIntervalSeconds(std::span<const uint8_t> b, size_t at) {
  return static_cast<double>(GetI64(b, at)) / 65536.0 / 1e9;
}

std::string PortIdentityText(std::span<const uint8_t> b, size_t at) {
  return FormatClockIdentity(b.subspan(at, 8)) + "-" + std::to_string(Get16(b, at + 8));
}

Status NeedBytes(std::span<const uint8_t> data, uint16_t id) {
  const size_t need = DataSetBytes(id);
  if (data.size() >= need) return Status::Ok();
  return Error{ManagementIdName(id) + ": " + std::to_string(data.size()) + " bytes, need " +
               std::to_string(need)};
}

std::string ManagementErrorName(uint16_t code) {
  switch (code) {
    case 0x0001:
      return "RESPONSE_TOO_BIG";
    case 0x0002:
      return "NO_SUCH_ID";
    case 0x0003:
      return "WRONG_LENGTH";
    case 0x0004:
      return "WRONG_VALUE";
    case 0x0005:
      return "NOT_SETABLE";
    case 0x0006:
      return "NOT_SUPPORTED";
    case 0xFFFE:
      return "GENERAL_ERROR";
    default:
      return "error " + std::to_string(code);
  }
}

// The MANAGEMENT_ERROR_STATUS TLV's value (managementErrorId, managementId,
// 4 reserved bytes, displayData) as an Error.
Error ManagementErrorStatus(std::span<const uint8_t> value, uint16_t asked_id) {
  if (value.size() < 4) {
    return Error{"MANAGEMENT_ERROR_STATUS TLV too short (" + std::to_string(value.size()) +
                 " bytes) for " + ManagementIdName(asked_id)};
  }
  return Error{"ptp4l answered " + ManagementIdName(Get16(value, 2)) + " with " +
               ManagementErrorName(Get16(value, 0))};
}

// Checks the common header and management body; returns the TLV's bytes.
Result<std::span<const uint8_t>> CheckEnvelope(std::span<const uint8_t> m, uint16_t sequence) {
  if (m.size() < kManagementBytes + kTlvHeaderBytes) {
    return Error{"short message: " + std::to_string(m.size()) + " bytes, need at least " +
                 std::to_string(kManagementBytes + kTlvHeaderBytes)};
  }
  if ((m[0] & 0x0F) != kMessageTypeManagement) {
    return Error{"not a management message (messageType " + std::to_string(m[0] & 0x0F) + ")"};
  }
  if ((m[1] & 0x0F) != kVersionPtp) {
    return Error{"unsupported PTP version " + std::to_string(m[1] & 0x0F)};
  }
  const size_t length = Get16(m, 2);
  if (length > m.size() || length < kManagementBytes + kTlvHeaderBytes) {
    return Error{"messageLength " + std::to_string(length) + " does not fit the " +
                 std::to_string(m.size()) + "-byte datagram"};
  }
  if ((m[46] & 0x0F) != kActionResponse) {
    return Error{"action " + std::to_string(m[46] & 0x0F) + " is not RESPONSE"};
  }
  if (Get16(m, 30) != sequence) {
    return Error{"wrong sequence id " + std::to_string(Get16(m, 30)) + " (expected " +
                 std::to_string(sequence) + ")"};
  }
  return m.subspan(kManagementBytes, length - kManagementBytes);
}

}  // namespace

std::string ManagementIdName(uint16_t id) {
  switch (id) {
    case kIdDefaultDataSet:
      return "DEFAULT_DATA_SET";
    case kIdCurrentDataSet:
      return "CURRENT_DATA_SET";
    case kIdParentDataSet:
      return "PARENT_DATA_SET";
    case kIdTimePropertiesDataSet:
      return "TIME_PROPERTIES_DATA_SET";
    case kIdPortDataSet:
      return "PORT_DATA_SET";
    case kIdTimeStatusNp:
      return "TIME_STATUS_NP";
    default: {
      char buf[8];
      std::snprintf(buf, sizeof buf, "0x%04x", id);
      return buf;
    }
  }
}

size_t DataSetBytes(uint16_t id) {
  switch (id) {
    case kIdDefaultDataSet:
      return 20;
    case kIdCurrentDataSet:
      return 18;
    case kIdParentDataSet:
      return 32;
    case kIdTimePropertiesDataSet:
      return 4;
    case kIdPortDataSet:
      return 26;
    case kIdTimeStatusNp:
      return 50;
    default:
      return 0;
  }
}

std::string FormatClockIdentity(std::span<const uint8_t> b) {
  if (b.size() < 8) return "";
  char buf[24];
  std::snprintf(buf, sizeof buf, "%02x%02x%02x.%02x%02x.%02x%02x%02x", b[0], b[1], b[2], b[3], b[4],
                b[5], b[6], b[7]);
  return buf;
}

std::vector<uint8_t> BuildGetRequest(uint16_t management_id, uint16_t sequence,
                                     uint8_t domain_number, uint16_t source_port_number) {
  const size_t data_bytes = DataSetBytes(management_id);
  std::vector<uint8_t> m(kManagementBytes + kTlvHeaderBytes + 2 + data_bytes, 0);
  m[0] = kMessageTypeManagement;
  m[1] = kVersionPtp;
  Put16(m, 2, static_cast<uint16_t>(m.size()));
  m[4] = domain_number;
  Put16(m, 28, source_port_number);  // source clock identity (20..27) stays zero
  Put16(m, 30, sequence);
  m[32] = kControlManagement;
  m[33] = kLogIntervalManagement;
  for (size_t i = 34; i < 44; ++i) m[i] = 0xFF;  // wildcard target port identity
  m[44] = 0;                                     // startingBoundaryHops
  m[45] = 0;                                     // boundaryHops: not forwarded
  m[46] = kActionGet;
  Put16(m, 48, kTlvManagement);
  Put16(m, 50, static_cast<uint16_t>(2 + data_bytes));
  Put16(m, 52, management_id);
  return m;
}

int MessageSequence(std::span<const uint8_t> message) {
  if (message.size() < 32) return -1;
  return Get16(message, 30);
}

Result<ManagementResponse> ParseResponse(std::span<const uint8_t> message, uint16_t sequence,
                                         uint16_t management_id) {
  auto tlvs = CheckEnvelope(message, sequence);
  if (!tlvs) return tlvs.error();
  const std::span<const uint8_t> tlv = *tlvs;
  const uint16_t type = Get16(tlv, 0);
  const size_t length = Get16(tlv, 2);
  if (kTlvHeaderBytes + length > tlv.size()) {
    return Error{"TLV with length " + std::to_string(length) + " past the end of the message (" +
                 std::to_string(tlv.size() - kTlvHeaderBytes) + " bytes left)"};
  }
  const std::span<const uint8_t> value = tlv.subspan(kTlvHeaderBytes, length);
  if (type == kTlvManagementErrorStatus) return ManagementErrorStatus(value, management_id);
  if (type != kTlvManagement) {
    return Error{"unexpected TLV type " + std::to_string(type) + " (expected MANAGEMENT)"};
  }
  if (length < 2) return Error{"MANAGEMENT TLV too short for a management id"};
  const uint16_t id = Get16(value, 0);
  if (id != management_id) {
    return Error{"wrong management id " + ManagementIdName(id) + " (asked for " +
                 ManagementIdName(management_id) + ")"};
  }
  ManagementResponse r;
  r.sequence = sequence;
  r.domain_number = message[4];
  r.source_port_identity = PortIdentityText(message, 20);
  r.source_port_number = Get16(message, 28);
  r.management_id = id;
  r.data.assign(value.begin() + 2, value.end());
  return r;
}

Status DecodeDefaultDataSet(std::span<const uint8_t> d, PtpObservation& out) {
  if (Status s = NeedBytes(d, kIdDefaultDataSet); !s) return s;
  out.slave_only = (d[0] & 0x02) != 0;
  out.number_ports = Get16(d, 2);
  out.clock_class = d[5];
  out.clock_identity = FormatClockIdentity(d.subspan(10, 8));
  out.domain_number = d[18];
  return Status::Ok();
}

Status DecodeCurrentDataSet(std::span<const uint8_t> d, PtpObservation& out) {
  if (Status s = NeedBytes(d, kIdCurrentDataSet); !s) return s;
  out.steps_removed = Get16(d, 0);
  out.offset_from_master_s = TimeIntervalSeconds(d, 2);
  out.mean_path_delay_s = TimeIntervalSeconds(d, 10);
  return Status::Ok();
}

Status DecodeParentDataSet(std::span<const uint8_t> d, PtpObservation& out) {
  if (Status s = NeedBytes(d, kIdParentDataSet); !s) return s;
  out.parent_port_identity = PortIdentityText(d, 0);
  out.grandmaster_priority1 = d[18];
  out.grandmaster_clock_class = d[19];
  out.grandmaster_clock_accuracy = d[20];
  out.grandmaster_offset_scaled_log_variance = Get16(d, 21);
  out.grandmaster_priority2 = d[23];
  out.grandmaster_identity = FormatClockIdentity(d.subspan(24, 8));
  return Status::Ok();
}

Status DecodeTimePropertiesDataSet(std::span<const uint8_t> d, PtpObservation& out) {
  if (Status s = NeedBytes(d, kIdTimePropertiesDataSet); !s) return s;
  out.current_utc_offset_s = static_cast<int16_t>(Get16(d, 0));
  const uint8_t flags = d[2];
  out.leap61 = (flags & 0x01) != 0;
  out.leap59 = (flags & 0x02) != 0;
  out.current_utc_offset_valid = (flags & 0x04) != 0;
  out.ptp_timescale = (flags & 0x08) != 0;
  out.time_traceable = (flags & 0x10) != 0;
  out.frequency_traceable = (flags & 0x20) != 0;
  out.time_source = d[3];
  return Status::Ok();
}

// master_offset (8, ns), ingress_time (8), cumulativeScaledRateOffset (4),
// scaledLastGmPhaseChange (4), gmTimeBaseIndicator (2), lastGmPhaseChange
// (12), gmPresent (4), gmIdentity (8).
Status DecodeTimeStatusNp(std::span<const uint8_t> d, PtpObservation& out) {
  if (Status s = NeedBytes(d, kIdTimeStatusNp); !s) return s;
  out.master_offset_s = static_cast<double>(GetI64(d, 0)) / 1e9;
  out.gm_present = Get32(d, 38) != 0;
  out.gm_identity_np = FormatClockIdentity(d.subspan(42, 8));
  return Status::Ok();
}

Result<PtpPortObservation> DecodePortDataSet(std::span<const uint8_t> d) {
  if (Status s = NeedBytes(d, kIdPortDataSet); !s) return s.error();
  PtpPortObservation p;
  p.port_identity = PortIdentityText(d, 0);
  p.port_number = Get16(d, 8);
  p.raw_state = d[10];
  p.state = d[10] >= 1 && d[10] <= 9 ? static_cast<PtpPortState>(d[10]) : PtpPortState::kUnknown;
  p.peer_mean_path_delay_s = TimeIntervalSeconds(d, 12);
  p.log_announce_interval = static_cast<int8_t>(d[20]);
  p.announce_receipt_timeout = d[21];
  p.log_sync_interval = static_cast<int8_t>(d[22]);
  p.delay_mechanism = d[23];
  return p;
}

}  // namespace vmtime::ptp
