// AuditSink: ids, the ring and its paging, counters, and the JSON-lines
// writer (restart recovery, reopen after a rename, copytruncate, the size
// bound, an unwritable path, and the bounded queue overflowing while the
// writer is blocked). Time comes from a FakeClock; the writer thread is
// real and is waited for with WaitWritten (no sleeps).
#include "exporter/events/audit_sink.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "exporter/events/event_json.h"

namespace vmtime {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "audit_sink_test.XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

Event Ev(const std::string& type, const std::string& domain = "") {
  Event e;
  e.type = type;
  e.domain = domain;
  e.values = {{"n", 1}};
  return e;
}

std::vector<nlohmann::json> ReadLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

AuditOptions FileOptions(const std::string& file) {
  AuditOptions o;
  o.file = file;
  o.sync_interval_s = 0;
  o.host = "hv1";
  return o;
}

TEST(AuditSink, IdsIncreaseRingIsBoundedAndPaged) {
  FakeClock clock;
  AuditOptions o;
  o.ring_size = 3;
  AuditSink sink(clock, o);
  for (int i = 0; i < 5; ++i) sink.Emit(Ev(i % 2 ? "agent_lost" : "agent_back"));
  EXPECT_EQ(sink.last_id(), 5u);
  EventPage all = sink.Since(0, 100);
  ASSERT_EQ(all.events.size(), 3u);  // 3, 4, 5: the ring keeps the newest
  EXPECT_EQ(all.events.front().id, 3u);
  EXPECT_EQ(all.oldest_id, 3u);
  EXPECT_TRUE(all.gap);  // 1 and 2 are gone
  EXPECT_FALSE(all.more);
  EXPECT_EQ(all.events.front().time_real_ns, clock.RealtimeNs());
  EventPage page = sink.Since(2, 2);
  EXPECT_FALSE(page.gap);
  ASSERT_EQ(page.events.size(), 2u);
  EXPECT_EQ(page.events.back().id, 4u);
  EXPECT_TRUE(page.more);
  EXPECT_TRUE(sink.Since(5, 10).events.empty());
  const EventCounters c = sink.Counters();
  EXPECT_EQ(c.total_by_type.at("agent_back"), 3u);
  EXPECT_EQ(c.total_by_type.at("agent_lost"), 2u);
  EXPECT_EQ(c.dropped_by_reason.at("queue_full"), 0u);
}

TEST(AuditSink, WritesJsonLinesAndContinuesIdsAfterRestart) {
  TempDir dir;
  const std::string file = dir.File("audit.jsonl");
  FakeClock clock;
  {
    AuditSink sink(clock, FileOptions(file));
    sink.Emit(Ev("reason_raised", "web-1"));
    sink.Emit(Ev("exporter_stopped"));
    sink.Close();
  }
  {
    AuditSink sink(clock, FileOptions(file));
    EXPECT_EQ(sink.last_id(), 2u);
    sink.Emit(Ev("exporter_started"));
    ASSERT_TRUE(sink.WaitWritten(5000));
  }
  const auto lines = ReadLines(file);
  ASSERT_EQ(lines.size(), 3u);
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i]["id"], i + 1);
  EXPECT_EQ(lines[0]["domain"], "web-1");
  EXPECT_EQ(lines[0]["host"], "hv1");
  EXPECT_TRUE(lines[1]["domain"].is_null());
  EXPECT_EQ(lines[0]["time"], Rfc3339Nano(clock.RealtimeNs()));
}

TEST(AuditSink, RecoversTheIdPastATornLineAndFromTheRotatedFile) {
  EXPECT_EQ(LastEventIdInTail("{\"id\":7}\n{\"id\":8}\n{\"id\":9,\"ty"), 8u);
  EXPECT_EQ(LastEventIdInTail("garbage\n"), 0u);
  EXPECT_EQ(LastEventIdInTail(""), 0u);
  TempDir dir;
  const std::string file = dir.File("a.jsonl");
  std::ofstream(file + ".1") << "{\"id\":41}\n{\"id\":42}\n";
  EXPECT_EQ(RecoverLastEventId(file), 42u);  // a.jsonl missing: logrotate just moved it
  std::ofstream(file) << "";
  EXPECT_EQ(RecoverLastEventId(file), 42u);  // empty new file
  std::ofstream(file) << "{\"id\":43}\n";
  EXPECT_EQ(RecoverLastEventId(file), 43u);
}

TEST(AuditSink, ReopenAfterRenameWritesTheNewFile) {
  TempDir dir;
  const std::string file = dir.File("audit.jsonl");
  FakeClock clock;
  AuditSink sink(clock, FileOptions(file));
  sink.Emit(Ev("a"));
  ASSERT_TRUE(sink.WaitWritten(5000));
  fs::rename(file, file + ".1");
  sink.Emit(Ev("b"));  // still the renamed file: not reopened yet
  ASSERT_TRUE(sink.WaitWritten(5000));
  sink.Reopen();
  sink.Emit(Ev("c"));
  ASSERT_TRUE(sink.WaitWritten(5000));
  sink.Close();
  const auto old_lines = ReadLines(file + ".1");
  const auto new_lines = ReadLines(file);
  ASSERT_EQ(old_lines.size(), 2u);
  ASSERT_EQ(new_lines.size(), 1u);
  EXPECT_EQ(new_lines[0]["id"], 3);
  EXPECT_EQ(new_lines[0]["type"], "c");
}

TEST(AuditSink, CopytruncateLeavesNoHole) {
  TempDir dir;
  const std::string file = dir.File("audit.jsonl");
  FakeClock clock;
  AuditSink sink(clock, FileOptions(file));
  sink.Emit(Ev("a"));
  sink.Emit(Ev("b"));
  ASSERT_TRUE(sink.WaitWritten(5000));
  ASSERT_EQ(::truncate(file.c_str(), 0), 0);
  sink.Emit(Ev("c"));
  ASSERT_TRUE(sink.WaitWritten(5000));
  const auto lines = ReadLines(file);  // parses: no NUL bytes before the line
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["id"], 3);
}

TEST(AuditSink, StopsAtTheSizeBoundAndCountsTheRest) {
  TempDir dir;
  const std::string file = dir.File("audit.jsonl");
  FakeClock clock;
  AuditOptions o = FileOptions(file);
  o.max_size_bytes = 600;
  AuditSink sink(clock, o);
  for (int i = 0; i < 20; ++i) sink.Emit(Ev("step_detected", "web-1"));
  ASSERT_TRUE(sink.WaitWritten(5000));
  const auto size = fs::file_size(file);
  EXPECT_LE(size, 600u);
  const auto lines = ReadLines(file);
  EXPECT_GT(lines.size(), 0u);
  const EventCounters c = sink.Counters();
  EXPECT_EQ(c.dropped_by_reason.at("size_limit") + lines.size(), 20u);
  EXPECT_EQ(sink.Since(0, 100).events.size(), 20u);  // the ring still has them all
  // Rotated away and reopened: writing resumes.
  fs::rename(file, file + ".1");
  sink.Reopen();
  sink.Emit(Ev("after"));
  ASSERT_TRUE(sink.WaitWritten(5000));
  ASSERT_EQ(ReadLines(file).size(), 1u);
}

TEST(AuditSink, UnwritablePathCountsWriteErrors) {
  FakeClock clock;
  AuditSink sink(clock, FileOptions("/nonexistent-dir-for-audit-test/audit.jsonl"));
  sink.Emit(Ev("a"));
  sink.Emit(Ev("b"));
  ASSERT_TRUE(sink.WaitWritten(5000));
  EXPECT_EQ(sink.Counters().dropped_by_reason.at("write_error"), 2u);
  EXPECT_EQ(sink.last_id(), 2u);
}

// The writer blocks opening a FIFO nobody reads yet: Emit still returns at
// once, the bounded queue fills and the overflow is counted as dropped.
TEST(AuditSink, QueueOverflowWhileTheWriterIsBlocked) {
  TempDir dir;
  const std::string fifo = dir.File("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  FakeClock clock;
  AuditOptions o = FileOptions(fifo);
  o.queue_size = 3;
  AuditSink sink(clock, o);
  for (int i = 0; i < 5; ++i) sink.Emit(Ev("e"));
  EXPECT_EQ(sink.Counters().dropped_by_reason.at("queue_full"), 2u);
  EXPECT_FALSE(sink.WaitWritten(50));             // still blocked
  const int rd = ::open(fifo.c_str(), O_RDONLY);  // unblocks the writer's open
  ASSERT_GE(rd, 0);
  ASSERT_TRUE(sink.WaitWritten(5000));
  std::string got(4096, '\0');
  const ssize_t n = ::read(rd, got.data(), got.size());
  ::close(rd);
  ASSERT_GT(n, 0);
  got.resize(static_cast<size_t>(n));
  std::istringstream in(got);
  std::string line;
  std::vector<uint64_t> ids;
  while (std::getline(in, line)) ids.push_back(nlohmann::json::parse(line)["id"].get<uint64_t>());
  EXPECT_EQ(ids, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(sink.Since(0, 10).events.size(), 5u);
}

TEST(EventsQuery, ParsesAndRefusesWithNames) {
  auto q = ParseEventsQuery("since=12&limit=3");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->since, 12u);
  EXPECT_EQ(q->limit, 3u);
  EXPECT_EQ(ParseEventsQuery("")->limit, 500u);
  EXPECT_NE(ParseEventsQuery("since=abc").error().message.find("since: 'abc'"), std::string::npos);
  EXPECT_NE(ParseEventsQuery("limit=0").error().message.find("limit"), std::string::npos);
  EXPECT_NE(ParseEventsQuery("limit=5000").error().message.find("0..1000"), std::string::npos);
  EXPECT_NE(ParseEventsQuery("x=1").error().message.find("unknown parameter 'x'"),
            std::string::npos);
}

TEST(EventsQuery, ServeEventsPages) {
  FakeClock clock;
  AuditSink sink(clock, AuditOptions{});
  for (int i = 0; i < 3; ++i) sink.Emit(Ev("e"));
  auto [status, body] = ServeEvents(sink, "since=1&limit=1");
  ASSERT_EQ(status, 200);
  const auto j = nlohmann::json::parse(body);
  ASSERT_EQ(j["events"].size(), 1u);
  EXPECT_EQ(j["events"][0]["id"], 2);
  EXPECT_EQ(j["next_since"], 2);
  EXPECT_EQ(j["more"], true);
  EXPECT_EQ(j["last_id"], 3);
  EXPECT_EQ(ServeEvents(sink, "since=-1").first, 400);
}

TEST(EventJson, Rfc3339) {
  EXPECT_EQ(Rfc3339Nano(1'700'000'000'123'456'789), "2023-11-14T22:13:20.123456789Z");
  EXPECT_EQ(Rfc3339Nano(0), "1970-01-01T00:00:00.000000000Z");
}

}  // namespace
}  // namespace vmtime
