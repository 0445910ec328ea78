// GzipBody: the gzip form of the /metrics text, rebuilt per snapshot by
// compressing only what changed since the previous one.
//
// A snapshot changes several times per poll round (every harvest), and each
// time only for the VMs sampled since; compressing the whole 19 MB text
// again (98 ms of CPU at 10,000 VMs, zlib level 1) for a few hundred changed
// VMs is most of what a new snapshot costs. So:
// - The VMs (sorted by name, as in the snapshot) are cut into runs
//   ("chunks") of about kChunkVms VMs. Boundaries are content-defined: a VM
//   whose uuid hashes to 0 modulo kChunkVms starts a chunk (and no chunk
//   grows beyond 4 times that), so a domain defined or undefined changes the
//   chunks around it only, not every chunk after it.
// - For each chunk and each per-VM family, the family's samples of the
//   chunk's VMs are compressed on their own as raw deflate ending in a
//   Z_SYNC_FLUSH (byte-aligned, no final block), with their CRC-32 and
//   length. Such pieces concatenate into one valid deflate stream.
// - A chunk is reused while the exposition key of every VM in it
//   (vm_metrics.h AppendVmExpositionKey: name, uuid, each sample's family,
//   label and value bits) is byte-equal to the one it was made from, so
//   reuse is exact: a reused piece is the bytes the render would produce.
// - The body is one gzip member: header, the host section (compressed every
//   time, a few kB), then family by family its HELP/TYPE lines (when any
//   chunk has a sample) and its pieces in chunk order, an empty final
//   block, and the CRC (crc32_combine of the pieces') and length.
// So the body decodes to exactly RenderText(snapshot) (tests compare), and
// a new snapshot costs the keys of every VM (a few ms at 10,000 VMs) plus
// the render and compression of the changed chunks. Not thread safe: the
// metrics cache calls it under its own lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "exporter/core/result.h"
#include "exporter/model/snapshot.h"

namespace vmtime::exposition {

class GzipBody {
 public:
  // Expected VMs per chunk, by measurement (docs/performance.md,
  // exposition_bench BM_PublishCycle): smaller chunks re-render fewer VMs
  // when changes are scattered, at more per-piece overhead and a lower
  // compression ratio.
  static constexpr size_t kChunkVms = 64;
  // `chunk_vms`: the expected VMs per chunk (benchmarks try others); a
  // chunk holds at most 4 times that.
  explicit GzipBody(int level, size_t chunk_vms = kChunkVms);
  ~GzipBody();
  GzipBody(const GzipBody&) = delete;
  GzipBody& operator=(const GzipBody&) = delete;

  // The gzip body of RenderText(s), reusing the pieces of unchanged chunks
  // of the previous call.
  Result<std::string> Make(const Snapshot& s);

  // Of the last Make: chunks in the body, and how many were rendered and
  // compressed (not reused).
  size_t chunks() const { return chunks_.size(); }
  size_t chunks_made() const { return chunks_made_; }
  // Heap bytes this object keeps between makes (chunk table, pieces, what
  // decides reuse, the uuid index; payload sizes, without malloc's own
  // overhead and without zlib's fixed deflate state of about 260 kB):
  // what the body costs in memory at a fleet size (tests, benchmarks).
  size_t retained_bytes() const;

 private:
  struct Piece {
    std::string deflated;  // raw deflate, sync-flushed; empty for no text
    uint32_t crc = 0;      // CRC-32 of the text
    size_t text_bytes = 0;
  };
  struct Chunk {
    std::string key;            // the VMs' exposition keys, concatenated
    std::vector<Piece> pieces;  // one per per-VM family (VmFamilies order)
  };
  class Deflater;

  Result<std::string> MakeBody(const Snapshot& s);
  // Brings chunks_ to `s`, reusing the unchanged chunks.
  Status UpdateChunks(const Snapshot& s);
  // Renders and compresses the per-VM families of `vms` into `chunk`.
  Status MakeChunk(const Snapshot& s, std::span<const VmView> vms, std::string& text, Chunk& chunk);

  const int level_;
  const size_t chunk_vms_;
  std::unique_ptr<Deflater> deflater_;
  std::vector<Chunk> chunks_;                      // in VM order
  std::unordered_map<std::string, size_t> index_;  // first VM's uuid -> position in chunks_
  size_t chunks_made_ = 0;
  size_t last_bytes_ = 0;  // reserve hint
};

}  // namespace vmtime::exposition
