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
// - A chunk is reused while the digest of its VMs' exposition keys
//   (vm_metrics.h AppendVmExpositionKey: name, uuid, each sample's family,
//   label and value bits; built into one scratch buffer reused from chunk
//   to chunk) equals the digest it was made from. Only the 16-byte digest
//   is kept per chunk, not the keys (410-580 bytes per VM, 4-6 MB at 10,000
//   VMs: docs/performance.md).
// - The body is one gzip member: header, the host section (compressed every
//   time, a few kB), then family by family its HELP/TYPE lines (when any
//   chunk has a sample) and its pieces in chunk order, an empty final
//   block, and the CRC (crc32_combine of the pieces') and length. It is a
//   ResponseBody (response_body.h) that refers to the pieces rather than
//   copying them: a piece is immutable once made, and shared by every body
//   made while its chunk is unchanged, so the body costs a pointer per
//   piece instead of a second copy of the compressed bytes.
// So the body decodes to exactly RenderText(snapshot) (tests compare),
// barring a digest collision (below), and a new snapshot costs the keys of
// every VM (a few ms at 10,000 VMs) and their digests (0.65 ms) plus the
// render and compression of the changed chunks. Not thread safe: the
// metrics cache calls it under its own lock.
//
// The digest (KeyDigestOf) is 128 bits from two 64-bit chains over the key
// in 16-byte blocks: each block is folded (the high and low halves of a
// 64x64->128-bit product, xored) with its chain's own two random words and
// xored into the chain's state, which is first rotated and multiplied by an
// odd constant (a bijection, so a difference in one block is never undone
// by equal blocks after it); then the length and a bijective finaliser. The
// four words come from std::random_device when the GzipBody is made and
// never leave the process, so keys cannot be chosen to collide. It is not a
// cryptographic hash: treating it as a random function, two different keys
// of a chunk get the same digest with probability 2^-128 per comparison;
// even counting one chain alone (2^-64), at 160 chunks compared 4 times a
// second that is one collision in about 10^9 years. A collision would leave
// that chunk's pieces stale: the gzip body would carry the chunk's previous
// samples (still a valid gzip stream, but no longer RenderText's bytes)
// until a VM of the chunk changes again, normally at its next sample,
// within one poll interval.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "exporter/core/result.h"
#include "exporter/exposition/response_body.h"
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
  Result<ResponseBody> Make(const Snapshot& s);

  // Of the last Make: chunks in the body, and how many were rendered and
  // compressed (not reused).
  size_t chunks() const { return chunks_.size(); }
  size_t chunks_made() const { return chunks_made_; }
  // Heap bytes this object keeps between makes (chunk table, pieces, what
  // decides reuse, the uuid index; payload sizes, without malloc's own
  // overhead and without zlib's fixed deflate state of about 260 kB):
  // what the body costs in memory at a fleet size (tests, benchmarks).
  size_t retained_bytes() const;

  // What decides a chunk's reuse: the 128-bit digest of its key bytes
  // (see the top of this file), seeded per GzipBody (tests).
  struct KeyDigest {
    uint64_t a = 0;
    uint64_t b = 0;
    bool operator==(const KeyDigest&) const = default;
  };
  KeyDigest KeyDigestOf(std::string_view bytes) const;

 private:
  struct Piece {
    ResponseBody::Part deflated;  // raw deflate, sync-flushed; null for no text
    uint32_t crc = 0;             // CRC-32 of the text
    size_t text_bytes = 0;
  };
  struct Chunk {
    KeyDigest digest;           // of the VMs' exposition keys, concatenated
    std::vector<Piece> pieces;  // one per per-VM family (VmFamilies order)
  };
  class Deflater;

  Result<ResponseBody> MakeBody(const Snapshot& s);
  // Brings chunks_ to `s`, reusing the unchanged chunks.
  Status UpdateChunks(const Snapshot& s);
  // Renders and compresses the per-VM families of `vms` into `chunk`.
  Status MakeChunk(const Snapshot& s, std::span<const VmView> vms, std::string& text, Chunk& chunk);

  const int level_;
  const size_t chunk_vms_;
  std::array<uint64_t, 4> seed_;  // the digest's random words (two per chain)
  std::unique_ptr<Deflater> deflater_;
  std::vector<Chunk> chunks_;  // in VM order
  // First VM's uuid -> position in chunks_.
  std::unordered_map<SharedString, size_t, SharedStringHash, SharedStringEqual> index_;
  size_t chunks_made_ = 0;
};

}  // namespace vmtime::exposition
