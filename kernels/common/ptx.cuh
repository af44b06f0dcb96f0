// Small wrappers around the Hopper PTX this project's kernels use: mbarriers, TMA tensor loads,
// wgmma (warpgroup matrix multiply) and its shared-memory descriptors. Device code only.
//
// The wgmma and TMA paths need sm_90a; INDEXCACHE_SM90A is defined for that target only, so the
// same sources still compile (to stubs) for other architectures.
#pragma once

#include <cuda.h>  // CUtensorMap (a plain struct; nothing from libcuda is linked)
#include <cuda_runtime.h>

#include <cstdint>

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define INDEXCACHE_SM90A 1
#endif

namespace indexcache::kernels::ptx {

constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ uint32_t smem_addr(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

__device__ __forceinline__ uint32_t lane_id() { return threadIdx.x & 31u; }

__device__ __forceinline__ uint32_t lanemask_lt() {
  uint32_t mask;
  asm("mov.u32 %0, %%lanemask_lt;" : "=r"(mask));
  return mask;
}

// --- mbarrier -------------------------------------------------------------------------------

__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}

// Makes the initialised barriers visible to the other threads and to the TMA unit.
__device__ __forceinline__ void mbar_fence_init() {
#ifdef INDEXCACHE_SM90A
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
}

__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}

// One arrival that also announces `bytes` of asynchronous (TMA) writes to wait for.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
#ifdef INDEXCACHE_SM90A
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
#endif
}

// Blocks until the barrier's phase with the given parity has completed.
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  const uint32_t address = smem_addr(bar);
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n"
        "}\n"
        : "=r"(done)
        : "r"(address), "r"(parity)
        : "memory");
  } while (!done);
}

// --- TMA --------------------------------------------------------------------------------------

// 2-D tiled tensor load into shared memory, completing on `bar` (complete_tx). `inner` indexes
// the contiguous dimension (elements), `outer` the rows.
__device__ __forceinline__ void tma_load_2d(void* smem_dst, const CUtensorMap* map, int32_t inner, int32_t outer,
                                            uint64_t* bar) {
#ifdef INDEXCACHE_SM90A
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(
          smem_addr(smem_dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(inner), "r"(outer), "r"(smem_addr(bar))
      : "memory");
#endif
}

__device__ __forceinline__ void tma_prefetch_descriptor(const CUtensorMap* map) {
#ifdef INDEXCACHE_SM90A
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
#endif
}

// --- named barriers ---------------------------------------------------------------------------

// Barrier `id` (1..15; 0 is __syncthreads) completes when `threads` threads have arrived;
// sync waits for completion, arrive does not.
__device__ __forceinline__ void named_barrier_sync(uint32_t id, uint32_t threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_barrier_arrive(uint32_t id, uint32_t threads) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// --- wgmma ------------------------------------------------------------------------------------

// Shared-memory matrix descriptor for a K-major operand stored with the 128-byte swizzle that
// TMA's CU_TENSOR_MAP_SWIZZLE_128B writes: rows of 128 bytes, 8-row atoms of 1024 bytes (the
// stride between atoms, SBO), the 16-byte chunks of row r XOR-ed with r % 8. The atom must be
// 1024-byte aligned; stepping along K inside the atom just advances the start address.
__device__ __forceinline__ uint64_t sw128_descriptor(const void* smem) {
  const uint32_t address = smem_addr(smem);
  uint64_t desc = 0;
  desc |= static_cast<uint64_t>((address & 0x3FFFF) >> 4);  // start address, 16-byte units
  desc |= static_cast<uint64_t>(1) << 16;                   // LBO: unused for swizzled K-major
  desc |= static_cast<uint64_t>(1024 >> 4) << 32;           // SBO: 8 rows x 128 bytes
  desc |= static_cast<uint64_t>(1) << 62;                   // layout: 128-byte swizzle
  return desc;
}

__device__ __forceinline__ void wgmma_fence() {
#ifdef INDEXCACHE_SM90A
  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#ifdef INDEXCACHE_SM90A
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
#endif
}
template <int kPending>
__device__ __forceinline__ void wgmma_wait() {
#ifdef INDEXCACHE_SM90A
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(kPending) : "memory");
#endif
}

// Keeps the compiler from moving accumulator reads or writes across the asynchronous wgmma.
__device__ __forceinline__ void fence_registers(float (&acc)[64]) {
#pragma unroll
  for (int i = 0; i < 64; ++i) asm volatile("" : "+f"(acc[i])::"memory");
}

#define INDEXCACHE_ACC64_OPERANDS(a)                                                                              \
  "+f"(a[0]), "+f"(a[1]), "+f"(a[2]), "+f"(a[3]), "+f"(a[4]), "+f"(a[5]), "+f"(a[6]), "+f"(a[7]), "+f"(a[8]),       \
      "+f"(a[9]), "+f"(a[10]), "+f"(a[11]), "+f"(a[12]), "+f"(a[13]), "+f"(a[14]), "+f"(a[15]), "+f"(a[16]),        \
      "+f"(a[17]), "+f"(a[18]), "+f"(a[19]), "+f"(a[20]), "+f"(a[21]), "+f"(a[22]), "+f"(a[23]), "+f"(a[24]),       \
      "+f"(a[25]), "+f"(a[26]), "+f"(a[27]), "+f"(a[28]), "+f"(a[29]), "+f"(a[30]), "+f"(a[31]), "+f"(a[32]),       \
      "+f"(a[33]), "+f"(a[34]), "+f"(a[35]), "+f"(a[36]), "+f"(a[37]), "+f"(a[38]), "+f"(a[39]), "+f"(a[40]),       \
      "+f"(a[41]), "+f"(a[42]), "+f"(a[43]), "+f"(a[44]), "+f"(a[45]), "+f"(a[46]), "+f"(a[47]), "+f"(a[48]),       \
      "+f"(a[49]), "+f"(a[50]), "+f"(a[51]), "+f"(a[52]), "+f"(a[53]), "+f"(a[54]), "+f"(a[55]), "+f"(a[56]),       \
      "+f"(a[57]), "+f"(a[58]), "+f"(a[59]), "+f"(a[60]), "+f"(a[61]), "+f"(a[62]), "+f"(a[63])

#define INDEXCACHE_ACC64_REGS                                                                                    \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, "  \
  "%46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

// D[64 x 128] (+)= A[64 x 16] * B[16 x 128], bf16 operands from shared memory (both K-major),
// fp32 accumulators. `accumulate` = 0 overwrites D.
__device__ __forceinline__ void wgmma_m64n128k16_bf16(float (&acc)[64], uint64_t desc_a, uint64_t desc_b,
                                                      uint32_t accumulate) {
#ifdef INDEXCACHE_SM90A
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " INDEXCACHE_ACC64_REGS
      ", %64, %65, p, 1, 1, 0, 0;\n"
      "}\n"
      : INDEXCACHE_ACC64_OPERANDS(acc)
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
#endif
}

// Same with e4m3 operands: A[64 x 32] * B[32 x 128].
__device__ __forceinline__ void wgmma_m64n128k32_e4m3(float (&acc)[64], uint64_t desc_a, uint64_t desc_b,
                                                      uint32_t accumulate) {
#ifdef INDEXCACHE_SM90A
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 " INDEXCACHE_ACC64_REGS
      ", %64, %65, p, 1, 1;\n"
      "}\n"
      : INDEXCACHE_ACC64_OPERANDS(acc)
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
#endif
}

// --- ordering keys ----------------------------------------------------------------------------

// Monotone map of a float score to uint32 (larger score -> larger key); -0 and +0 map to the
// same key so that exact zeros tie the way the CPU's comparison-based sort ties them.
__device__ __forceinline__ uint32_t score_key(float score) {
  uint32_t bits = __float_as_uint(score);
  if (bits == 0x80000000u) bits = 0;
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// Selection order as one integer: higher score first, then lower position. Every entry of a
// row is distinct, so "the k largest composites" is exactly the documented top-k rule.
__device__ __forceinline__ uint64_t composite_key(uint32_t key, uint32_t position) {
  return (static_cast<uint64_t>(key) << 32) | static_cast<uint64_t>(0xFFFFFFFFu - position);
}
__device__ __forceinline__ uint32_t composite_position(uint64_t composite) {
  return 0xFFFFFFFFu - static_cast<uint32_t>(composite);
}

}  // namespace indexcache::kernels::ptx
