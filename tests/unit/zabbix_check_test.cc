// Unit tests of vmtime_zabbix_check's pure parts (dashboards/zabbix/check/):
// URL and HTTP response parsing, the /api/v1/targets document checks, VM
// lookup, discovery JSON and every item key. Socket behaviour (timeouts,
// refused connections) is exercised end to end in tests/e2e/test_zabbix.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include "dashboards/zabbix/check/http_get.h"
#include "dashboards/zabbix/check/targets.h"

namespace vmtime::zabbix {
namespace {

using nlohmann::json;

// docs/api.md's example, two VMs (one with unknown values).
constexpr const char* kDoc = R"({
  "generated_at_unix": 1764050000.5,
  "exporter": {"version": "0.1.0", "revision": "abc123"},
  "libvirt": {"enabled": true, "connected": true},
  "host": {"timex": null, "chrony": null, "ntp": null},
  "vms": [
    {"domain": "new-vm", "uuid": "11111111-2222-3333-4444-555555555555", "state": "running",
     "agent_up": false, "agent_error": "Guest agent is not responding",
     "offset_seconds": null, "offset_uncertainty_seconds": null, "utc_offset_seconds": null,
     "drift_ratio": null, "clock_stopped": false, "steps_total": {"forward": 0, "backward": 0},
     "agent_rtt_seconds": null, "last_sample_timestamp_seconds": null, "guest": null,
     "health_score": 50, "band": "bad",
     "components": {"offset": 0, "sync_state": 0.5, "stratum": 0.5,
     "drift": 1, "stability": 1, "freshness": 0, "host_reference": 1},
     "reasons": ["agent_unreachable", "no_data"]},
    {"domain": "web-1", "uuid": "6F1C0000-AAAA-BBBB-CCCC-000000000001", "state": "running",
     "agent_up": true, "agent_error": "", "offset_seconds": -0.0123,
     "offset_uncertainty_seconds": 0.0004, "utc_offset_seconds": -0.0122,
     "drift_ratio": 2.6e-05, "clock_stopped": false,
     "steps_total": {"forward": 0, "backward": 1}, "agent_rtt_seconds": 0.0008,
     "last_sample_timestamp_seconds": 1764049995.5,
     "guest": {"daemon": "chrony", "synchronised": true, "stratum": 3, "leap_status": 0},
     "health_score": 97.4, "band": "good",
     "components": {"offset": 1.0, "sync_state": 1.0, "stratum": 1.0, "drift": 1.0,
                    "stability": 0.7, "freshness": 1.0, "host_reference": 1.0},
     "reasons": ["step_backward"]}
  ]
})";

json Doc() {
  auto doc = ParseTargets(kDoc);
  EXPECT_TRUE(doc.ok()) << (doc.ok() ? "" : doc.error().message);
  return *doc;
}

std::string Value(const json& doc, const std::string& vm, const std::string& key) {
  const json* v = FindVm(doc, vm);
  if (v == nullptr) return "<no vm>";
  Lookup l = VmValue(doc, *v, key);
  return l.ok ? l.value : "<fail:" + l.failure.message + ">";
}

TEST(ParseHttpUrl, HostPortPathAndDefaults) {
  auto u = ParseHttpUrl("http://127.0.0.1:9958");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "9958");
  EXPECT_EQ(u->path, "/");
  EXPECT_EQ(u->userinfo, "");

  u = ParseHttpUrl("HTTP://user:p%40ss@hv1.example.org/vmtime/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "hv1.example.org");
  EXPECT_EQ(u->port, "80");
  EXPECT_EQ(u->path, "/vmtime/");
  EXPECT_EQ(u->userinfo, "user:p%40ss");

  u = ParseHttpUrl("http://[::1]:9958/api/v1/targets");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, "9958");
  EXPECT_EQ(u->path, "/api/v1/targets");
}

TEST(ParseHttpUrl, ErrorsNameTheProblem) {
  struct Case {
    const char* url;
    const char* message_part;
  } cases[] = {
      {"https://hv1:9958", "https is not supported"},
      {"hv1:9958", "expected http://"},
      {"http://:9958", "empty host"},
      {"http://hv1:99999", "bad port"},
      {"http://hv1:0", "bad port"},
      {"http://hv1:http", "bad port"},
      {"http://[::1:9958", "unterminated IPv6"},
  };
  for (const Case& c : cases) {
    auto u = ParseHttpUrl(c.url);
    ASSERT_FALSE(u.ok()) << c.url;
    EXPECT_NE(u.error().message.find(c.message_part), std::string::npos)
        << c.url << ": " << u.error().message;
    EXPECT_NE(u.error().message.find(c.url), std::string::npos) << u.error().message;
  }
}

TEST(ParseHttpResponse, ContentLengthChunkedAndCloseDelimited) {
  auto r = ParseHttpResponse(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}junk");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->reason, "OK");
  EXPECT_EQ(r->content_type, "application/json");
  EXPECT_EQ(r->body, "{}");

  r = ParseHttpResponse(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
      "chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body, "{\"a\":1}");

  r = ParseHttpResponse("HTTP/1.0 401 Unauthorized\r\n\r\nnope");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->body, "nope");
}

TEST(ParseHttpResponse, RejectsGarbageAndTruncation) {
  EXPECT_FALSE(ParseHttpResponse("").ok());
  EXPECT_FALSE(ParseHttpResponse("SSH-2.0-OpenSSH\r\n\r\n").ok());
  EXPECT_FALSE(ParseHttpResponse("HTTP/1.1 200 OK\r\nContent-Length: 10").ok());
  auto r = ParseHttpResponse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("truncated"), std::string::npos) << r.error().message;
  EXPECT_FALSE(ParseHttpResponse("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").ok());
  EXPECT_FALSE(
      ParseHttpResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").ok());
  EXPECT_FALSE(
      ParseHttpResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nab").ok());
}

TEST(Base64Encode, Rfc4648Vectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("user:pass"), "dXNlcjpwYXNz");
}

TEST(ParseTargets, RejectsBadDocumentsWithTheirPosition) {
  auto d = ParseTargets("{\"vms\": [");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("not valid JSON"), std::string::npos) << d.error().message;
  d = ParseTargets("[]");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("top level is array"), std::string::npos);
  d = ParseTargets("{\"vms\": {}}");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("\"vms\""), std::string::npos);
  d = ParseTargets(R"({"vms": [{"domain": "a", "uuid": "u"}, {"domain": "b", "uuid": 7}]})");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("vms[1].uuid"), std::string::npos) << d.error().message;
  d = ParseTargets(R"({"vms": [3]})");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("vms[0]"), std::string::npos) << d.error().message;
  EXPECT_TRUE(ParseTargets(R"({"vms": []})").ok());
}

TEST(FindVm, ByNameThenUuidIgnoringCase) {
  json doc = Doc();
  ASSERT_NE(FindVm(doc, "web-1"), nullptr);
  EXPECT_EQ((*FindVm(doc, "web-1"))["domain"], "web-1");
  const json* by_uuid = FindVm(doc, "6f1c0000-aaaa-bbbb-cccc-000000000001");
  ASSERT_NE(by_uuid, nullptr);
  EXPECT_EQ((*by_uuid)["domain"], "web-1");
  EXPECT_EQ(FindVm(doc, "WEB-1"), nullptr);  // names are case-sensitive in libvirt
  EXPECT_EQ(FindVm(doc, "nope"), nullptr);
}

TEST(DiscoveryJson, OneRowPerVmWithMacros) {
  json rows = json::parse(DiscoveryJson(Doc()));
  ASSERT_TRUE(rows.is_array());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1]["{#VM.NAME}"], "web-1");
  EXPECT_EQ(rows[1]["{#VM.UUID}"], "6F1C0000-AAAA-BBBB-CCCC-000000000001");
  EXPECT_EQ(rows[1]["{#VM.STATE}"], "running");
  EXPECT_EQ(json::parse(DiscoveryJson(*ParseTargets(R"({"vms": []})"))), json::array());
}

TEST(VmValue, EveryKeyOfAHealthyVm) {
  json doc = Doc();
  EXPECT_EQ(Value(doc, "web-1", "score"), "97.4");
  EXPECT_EQ(Value(doc, "web-1", "band"), "0");
  EXPECT_EQ(Value(doc, "web-1", "offset"), "-0.0123");
  EXPECT_EQ(Value(doc, "web-1", "utc_offset"), "-0.0122");
  EXPECT_EQ(Value(doc, "web-1", "effective_offset"), "-0.0122");
  EXPECT_EQ(Value(doc, "web-1", "uncertainty"), "0.0004");
  EXPECT_EQ(Value(doc, "web-1", "drift"), "0.000026");
  EXPECT_EQ(Value(doc, "web-1", "stopped"), "0");
  EXPECT_EQ(Value(doc, "web-1", "agent_up"), "1");
  EXPECT_EQ(Value(doc, "web-1", "agent_error"), "");
  EXPECT_EQ(Value(doc, "web-1", "agent_rtt"), "0.0008");
  EXPECT_EQ(Value(doc, "web-1", "state"), "running");
  EXPECT_EQ(Value(doc, "web-1", "reasons"), "step_backward");
  EXPECT_EQ(Value(doc, "web-1", "reasons_count"), "1");
  EXPECT_EQ(Value(doc, "web-1", "reason.step_backward"), "1");
  EXPECT_EQ(Value(doc, "web-1", "reason.offset_critical"), "0");
  EXPECT_EQ(Value(doc, "web-1", "steps_forward"), "0");
  EXPECT_EQ(Value(doc, "web-1", "steps_backward"), "1");
  EXPECT_EQ(Value(doc, "web-1", "last_sample"), "1764049995.5");
  EXPECT_EQ(Value(doc, "web-1", "sample_age"), "5");
  EXPECT_EQ(Value(doc, "web-1", "guest_daemon"), "chrony");
  EXPECT_EQ(Value(doc, "web-1", "guest_synchronised"), "1");
  EXPECT_EQ(Value(doc, "web-1", "guest_stratum"), "3");
  EXPECT_EQ(Value(doc, "web-1", "guest_leap_status"), "0");
  EXPECT_EQ(Value(doc, "web-1", "uuid"), "6F1C0000-AAAA-BBBB-CCCC-000000000001");
  EXPECT_EQ(Value(doc, "web-1", "name"), "web-1");
  EXPECT_EQ(Value(doc, "web-1", "component.stability"), "0.7");
  EXPECT_EQ(Value(doc, "web-1", "component.offset"), "1");
}

TEST(VmValue, UnknownValuesAndKeysAreDistinctFailures) {
  json doc = Doc();
  const json* vm = FindVm(doc, "new-vm");
  ASSERT_NE(vm, nullptr);
  for (const char* key : {"offset", "utc_offset", "effective_offset", "drift", "agent_rtt",
                          "guest_stratum", "guest_daemon", "sample_age", "last_sample"}) {
    Lookup l = VmValue(doc, *vm, key);
    EXPECT_FALSE(l.ok) << key;
    EXPECT_EQ(l.failure.kind, LookupError::kUnknownValue) << key;
    EXPECT_NE(l.failure.message.find("new-vm"), std::string::npos) << l.failure.message;
  }
  EXPECT_EQ(Value(doc, "new-vm", "reasons"), "agent_unreachable,no_data");
  EXPECT_EQ(Value(doc, "new-vm", "agent_error"), "Guest agent is not responding");
  EXPECT_EQ(Value(doc, "new-vm", "score"), "50");
  EXPECT_EQ(Value(doc, "new-vm", "band"), "2");

  for (const char* key :
       {"bogus", "component.bogus", "reason.bogus", "", "component.", "guest_synchronized"}) {
    Lookup l = VmValue(doc, *vm, key);
    EXPECT_FALSE(l.ok) << key;
    EXPECT_EQ(l.failure.kind, LookupError::kUnknownKey) << key;
    EXPECT_FALSE(IsKnownKey(key)) << key;
  }
}

TEST(VmValue, EffectiveOffsetFallsBackToHostOffset) {
  auto doc = ParseTargets(
      R"({"vms": [{"domain": "x", "uuid": "u", "offset_seconds": -600, "utc_offset_seconds": null}]})");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(Value(*doc, "x", "effective_offset"), "-600");
}

TEST(VmValue, BandAsTheExportedNumber) {
  auto doc = ParseTargets(R"({"vms": [
      {"domain": "a", "uuid": "1", "band": "degraded"},
      {"domain": "b", "uuid": "2", "band": "awful"},
      {"domain": "c", "uuid": "3", "band": 2},
      {"domain": "d", "uuid": "4"}]})");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(Value(*doc, "a", "band"), "1");
  Lookup l = VmValue(*doc, *FindVm(*doc, "b"), "band");
  EXPECT_EQ(l.failure.kind, LookupError::kBadDocument);
  EXPECT_NE(l.failure.message.find("band is 'awful'"), std::string::npos) << l.failure.message;
  EXPECT_EQ(VmValue(*doc, *FindVm(*doc, "c"), "band").failure.kind, LookupError::kBadDocument);
  // An exporter without bands: unknown, not an error of the document.
  EXPECT_EQ(VmValue(*doc, *FindVm(*doc, "d"), "band").failure.kind, LookupError::kUnknownValue);
}

TEST(VmValue, GuestSynchronisedReadsTheOldFieldNameToo) {
  auto doc = ParseTargets(R"({"vms": [
      {"domain": "old", "uuid": "1", "guest": {"synchronized": false}},
      {"domain": "new", "uuid": "2", "guest": {"synchronised": true}},
      {"domain": "none", "uuid": "3", "guest": {"synchronised": null}}]})");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(Value(*doc, "old", "guest_synchronised"), "0");
  EXPECT_EQ(Value(*doc, "new", "guest_synchronised"), "1");
  EXPECT_EQ(VmValue(*doc, *FindVm(*doc, "none"), "guest_synchronised").failure.kind,
            LookupError::kUnknownValue);
}

TEST(VmValue, EveryContractReasonIsAKey) {
  json doc = Doc();
  for (const char* r :
       {"offset_elevated", "offset_high", "offset_critical", "resumed_behind", "clock_stopped",
        "step_backward", "step_forward", "drift_high", "unsynchronised", "guest_sync_unknown",
        "stratum_high", "leap_pending", "stale", "agent_unreachable", "host_unsynchronised",
        "host_stratum_high", "no_data"}) {
    const std::string key = std::string("reason.") + r;
    EXPECT_TRUE(IsKnownKey(key)) << key;
    EXPECT_EQ(Value(doc, "web-1", key), r == std::string("step_backward") ? "1" : "0") << key;
  }
}

TEST(VmValue, WrongTypesAreBadDocuments) {
  auto doc = ParseTargets(
      R"({"vms": [{"domain": "x", "uuid": "u", "health_score": "high", "reasons": "a"}]})");
  ASSERT_TRUE(doc.ok());
  const json* vm = FindVm(*doc, "x");
  Lookup l = VmValue(*doc, *vm, "score");
  EXPECT_EQ(l.failure.kind, LookupError::kBadDocument);
  EXPECT_NE(l.failure.message.find("health_score is string"), std::string::npos)
      << l.failure.message;
  EXPECT_EQ(VmValue(*doc, *vm, "reasons").failure.kind, LookupError::kBadDocument);
}

TEST(IsKnownKey, AcceptsEveryDocumentedKey) {
  for (const std::string& k : KnownKeys()) {
    if (k.find('<') != std::string::npos) continue;
    EXPECT_TRUE(IsKnownKey(k)) << k;
  }
  // Every key the template uses is listed (the list is what --help prints).
  for (const char* k : {"score", "band", "effective_offset", "offset", "utc_offset", "uncertainty",
                        "drift", "stopped", "agent_up", "agent_rtt", "state", "reasons",
                        "steps_backward", "guest_synchronised", "guest_stratum"}) {
    EXPECT_NE(std::find(KnownKeys().begin(), KnownKeys().end(), k), KnownKeys().end()) << k;
  }
  EXPECT_TRUE(IsKnownKey("component.host_reference"));
  EXPECT_TRUE(IsKnownKey("reason.host_unsynchronised"));
}

TEST(FormatNumber, PlainDecimalsZabbixParses) {
  EXPECT_EQ(FormatNumber(0), "0");
  EXPECT_EQ(FormatNumber(-600), "-600");
  EXPECT_EQ(FormatNumber(97.4), "97.4");
  EXPECT_EQ(FormatNumber(2.6e-5), "0.000026");
  EXPECT_EQ(FormatNumber(1764049995.5), "1764049995.5");
  EXPECT_EQ(std::stod(FormatNumber(1.2345678901234e-9)), 1.2345678901234e-9);
}

}  // namespace
}  // namespace vmtime::zabbix
