// Tiles and shared-memory plan of the fused score kernel (lightning_kernel.cuh), one per
// (element, head dim, heads) variant. Included by the kernel and by its host-side launcher
// (the launch size is kSmemBytes), so nothing here needs a CUDA header.
#pragma once

#include <cstddef>
#include <cstdint>

namespace indexcache::kernels::detail {

// Warp 0 produces (TMA), warps 1..3 select, warps 4..11 are the two math warpgroups.
constexpr int kThreads = 384;
// The most dynamic shared memory a Hopper CTA may opt into.
constexpr int kSmemLimit = 227 * 1024;
// Bins of a selection warp's per-query histogram (selection::kWarpBins: 8 per lane).
constexpr int kCandidateBins = 256;

// Per-query state of a selection warp's candidate buffer (maintained in candidate_buffer.cuh).
struct SelectState {
  uint32_t tau;     // append only keys > tau
  uint32_t lo;      // histogram covers keys >= lo ...
  uint32_t shift;   // ... in bins of 2^shift, bin 255 open-ended
  uint32_t count;   // entries in the buffer
  uint32_t maxkey;  // largest key in the buffer
  uint32_t pad[3];
};

template <bool kFp8, int kDim, int kHeads>
struct LightningTiles {
  static constexpr int kElemBytes = kFp8 ? 1 : 2;
  static constexpr int kQueriesPerWG = 128 / kHeads;  // wgmma N = 128 columns = (query, head)
  static constexpr int kBlockQ = 2 * kQueriesPerWG;
  static constexpr int kBlockK = 64;                  // wgmma M: keys per tile
  static constexpr int kRowBytes = kDim * kElemBytes;
  static constexpr int kChunks = kRowBytes / 128;     // 128-byte swizzle atoms along the head dim
  static constexpr int kChunkElems = 128 / kElemBytes;
  static constexpr int kKSteps = kRowBytes / 32;      // every wgmma consumes 32 bytes of K
  static constexpr int kQRows = kBlockQ * kHeads;     // 256
  static constexpr int kQChunkBytes = kQRows * 128;
  static constexpr int kQStageBytes = kChunks * kQChunkBytes;
  static constexpr int kKChunkBytes = kBlockK * 128;
  static constexpr int kKStageBytes = kChunks * kKChunkBytes;
  static constexpr int kKStages = kKStageBytes <= 8192 ? 8 : 4;
  static constexpr int kEpiStride = 72;  // floats per query row of a score tile: 64 + 8 (banks)
  static constexpr int kEpiStageFloats = kBlockQ * kEpiStride;
  static constexpr int kEpiStageBytes = kEpiStageFloats * 4;
  static_assert(kHeads % 8 == 0 && 128 % kHeads == 0, "heads must divide the 128 columns of a warpgroup");
  static_assert(kRowBytes % 128 == 0, "head dim must fill whole 128-byte swizzle rows");
  static_assert(kQRows <= 256, "TMA boxes hold at most 256 rows");
};

// Shared memory of one CTA. The kernel places it at the first 1024-byte boundary of its
// dynamic shared memory: the TMA destinations (queries, keys) are wgmma operands in the
// 128-byte swizzle, whose 8-row atoms must be 1024-byte aligned.
template <class Tiles, int kQueryStages, int kRingStages>
struct LightningSharedStorage {
  // The producer may load the next block's q while the math warpgroups still read this one.
  static constexpr int kMaxQueryStages = 2;
  // The score-tile ring's depth is solved from the bytes everything else takes
  // (lightning_ring_stages), so the barrier space must not depend on it: it is reserved for the
  // deepest ring, as it is for two q stages.
  static constexpr int kMaxRingStages = 16;

  // Each region is one flat array that the kernel indexes by stage (and chunk, query, lane)
  // with the strides of LightningTiles: written as [stage][...] arrays the same addresses
  // compile to different (64-bit, per-dimension) index arithmetic and one more register.
  uint8_t queries[kQueryStages * Tiles::kQStageBytes];  // the B operand: [stage][chunk][256 rows][128 B]
  uint8_t keys[Tiles::kKStages * Tiles::kKStageBytes];  // the A operand: [stage][chunk][64 keys][128 B]
  // Finished score tiles, from the math warpgroups to the selection warps:
  // [stage][kBlockQ queries][kEpiStride floats, 64 keys used].
  float score_tiles[kRingStages * Tiles::kEpiStageFloats];
  uint32_t histograms[Tiles::kBlockQ * kCandidateBins];  // [query][bin] of each query's candidate keys
  float row_max[Tiles::kBlockQ * 32];                    // RowMax: [query][lane] running maxima
  SelectState states[Tiles::kBlockQ];
  // mbarriers per pipeline slot: "full" completes when the slot's data is in (TMA bytes, or a
  // score tile written by both math warpgroups), "empty" when every reader has released it.
  uint64_t query_full[kMaxQueryStages];
  uint64_t query_empty[kMaxQueryStages];
  uint64_t key_full[Tiles::kKStages];
  uint64_t key_empty[Tiles::kKStages];
  union RingBarriers {
    struct Used {
      uint64_t full[kRingStages];
      uint64_t empty[kRingStages];
    } used;
    uint64_t reserved[2 * kMaxRingStages];
  } ring_barriers;
};

// The alignment slack: placing the plan on a 1024-byte boundary skips up to 1023 bytes.
constexpr int kSmemAlignment = 1024;

// The score-tile ring is the selection warps' slack (a compaction must not stall the math): as
// deep as shared memory allows next to kQueryStages q stages, at most kMaxRingStages.
template <class Tiles, int kQueryStages>
constexpr int lightning_ring_stages() {
  using Plan = LightningSharedStorage<Tiles, kQueryStages, 1>;
  constexpr int everything_else = static_cast<int>(sizeof(Plan)) - Tiles::kEpiStageBytes;
  constexpr int fit = (kSmemLimit - kSmemAlignment - everything_else) / Tiles::kEpiStageBytes;
  return fit > Plan::kMaxRingStages ? Plan::kMaxRingStages : fit;
}

template <bool kFp8, int kDim, int kHeads>
struct LightningConfig : LightningTiles<kFp8, kDim, kHeads> {
  using Tiles = LightningTiles<kFp8, kDim, kHeads>;
  // Two q stages when the ring can still be at least 4 deep next to them, else one.
  static constexpr int kQStages = lightning_ring_stages<Tiles, 2>() >= 4 ? 2 : 1;
  static constexpr int kEpiStages = lightning_ring_stages<Tiles, kQStages>();
  using SharedStorage = LightningSharedStorage<Tiles, kQStages, kEpiStages>;
  // The launch's dynamic shared memory.
  static constexpr int kSmemBytes = static_cast<int>(sizeof(SharedStorage)) + kSmemAlignment;

  static_assert(kEpiStages >= 2, "shared memory for the score-tile ring");
  static_assert(kSmemBytes <= kSmemLimit, "shared memory");

  // The regions lie end to end with no padding, in the order above: the offsets and the launch
  // size are the byte sums the kernel kept by hand before this plan was a struct, so moving
  // to the struct changed no address.
  static constexpr size_t kKeysOffset = size_t{kQStages} * Tiles::kQStageBytes;
  static constexpr size_t kScoreTilesOffset = kKeysOffset + size_t{Tiles::kKStages} * Tiles::kKStageBytes;
  static constexpr size_t kHistogramsOffset = kScoreTilesOffset + size_t{kEpiStages} * Tiles::kEpiStageBytes;
  static constexpr size_t kRowMaxOffset = kHistogramsOffset + size_t{Tiles::kBlockQ} * kCandidateBins * 4;
  static constexpr size_t kStatesOffset = kRowMaxOffset + size_t{Tiles::kBlockQ} * 32 * 4;
  static constexpr size_t kBarriersOffset = kStatesOffset + size_t{Tiles::kBlockQ} * 32;
  static_assert(sizeof(SelectState) == 32, "selection state");
  static_assert(offsetof(SharedStorage, queries) == 0, "q stages first");
  static_assert(offsetof(SharedStorage, keys) == kKeysOffset, "k stages after the q stages");
  static_assert(kKeysOffset % kSmemAlignment == 0 && Tiles::kQChunkBytes % kSmemAlignment == 0 &&
                    Tiles::kKChunkBytes % kSmemAlignment == 0,
                "every TMA destination starts on a 1024-byte swizzle atom");
  static_assert(offsetof(SharedStorage, score_tiles) == kScoreTilesOffset, "score-tile ring after the k stages");
  static_assert(offsetof(SharedStorage, histograms) == kHistogramsOffset, "histograms after the ring");
  static_assert(offsetof(SharedStorage, row_max) == kRowMaxOffset, "row maxima after the histograms");
  static_assert(offsetof(SharedStorage, states) == kStatesOffset, "selection states after the row maxima");
  static_assert(offsetof(SharedStorage, query_full) == kBarriersOffset, "barriers after the states");
  static_assert(offsetof(SharedStorage, query_empty) == kBarriersOffset + 8 * 2, "q barriers: two slots each");
  static_assert(offsetof(SharedStorage, key_full) == kBarriersOffset + 8 * 4, "k barriers after the q barriers");
  static_assert(offsetof(SharedStorage, key_empty) == kBarriersOffset + 8 * (4 + Tiles::kKStages), "k barriers");
  static_assert(offsetof(SharedStorage, ring_barriers) == kBarriersOffset + 8 * (4 + 2 * Tiles::kKStages),
                "ring barriers after the k barriers");
  static_assert(offsetof(typename SharedStorage::RingBarriers::Used, empty) == 8 * size_t{kEpiStages},
                "ring: the empty barriers right after the full ones");
  // Barriers for 2 q stages, the k stages and the deepest ring, then the alignment slack: the
  // launch size the hand-kept byte sum gave.
  static_assert(kSmemBytes == kBarriersOffset + 8 * (4 + 2 * Tiles::kKStages + 2 * 16) + kSmemAlignment,
                "launch size");
};

}  // namespace indexcache::kernels::detail
