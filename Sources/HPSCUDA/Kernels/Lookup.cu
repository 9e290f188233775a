// The CUDA C of the GPU lookups, embedded in the binary (Package.swift's
// .embedInCode) and compiled by NVRTC once per process. KernelSource puts
// #defines in front of it: DIM (the vec size), KEY_T (the key type), LANES
// (threads per key), STORAGE and ROW_BYTES (how a table's rows are stored:
// VectorStorage.kernelCode and rowBytes) and any compile-time choices of
// the GPUTuning in use.
// Each extern "C" kernel's parameters are checked against the arguments of
// its launch (CUDAKernel.launch) where the driver reports them.

typedef unsigned long long u64;
typedef unsigned int u32;

// One slot of a GPU table's index: the key, then ((member << rowBits) | row) + 1, 0 when empty.
// A dynamic cache also leaves HPS_TOMB where it evicted a key (probes go
// on past it) and HPS_BUSY while a thread writes a new key into the slot.
struct __align__(16) Slot { long long key; u32 ref; u32 pad; };
#define HPS_TOMB 0xFFFFFFFFu
#define HPS_BUSY 0xFFFFFFFEu

// The same hash as the CPU's KeyHash (murmur3's finalizer over key + member × golden ratio).
__device__ __forceinline__ u64 hps_hash(long long key, int member) {
    u64 h = (u64)key + (u64)member * 0x9E3779B97F4A7C15ull;
    h ^= h >> 33; h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33; h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return h;
}

__device__ __forceinline__ u32 hps_slot(u64 h, u32 capacity) {
    return (u32)(((h & 0xFFFFFFFFull) * (u64)capacity) >> 32);
}

// The row of (key, member) in an index, or -1: linear probing from the
// key's home slot, past tombstones, to the key or an empty slot.
__device__ __forceinline__ long long hps_find_row(const Slot* __restrict__ slots, u32 capacity, u32 rowBits,
                                                  long long key, int member) {
    const u32 rowMask = rowBits == 32 ? 0xFFFFFFFFu : ((1u << rowBits) - 1u);
    u32 s = hps_slot(hps_hash(key, member), capacity);
    while (true) {
        const Slot slot = slots[s];
        if (slot.ref == 0) return -1;
        const u32 stored = slot.ref - 1u;
        if (slot.key == key && slot.ref != HPS_TOMB && (rowBits == 32 || (int)(stored >> rowBits) == member))
            return (long long)(stored & rowMask);
        s = (s + 1 == capacity) ? 0 : s + 1;
    }
}

// A static table's ranked index (GPUTableIndex): slot keys, the taken
// bits and rows before of each 64 slots, and slot members (null for one
// member). Its reads ask L2 to keep the index (evict last; INDEX_NO_POLICY
// turns that off, for tuning), as every lookup reads it at random.
__device__ __forceinline__ u64 hps_index_policy() {
    u64 policy;
    asm("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(policy));
    return policy;
}
__device__ __forceinline__ u64 hps_index_load(const u64* p, u64 policy) {
#ifdef INDEX_NO_POLICY
    return __ldg(p);
#else
    u64 v;
    asm("ld.global.nc.L2::cache_hint.u64 %0, [%1], %2;" : "=l"(v) : "l"(p), "l"(policy));
    return v;
#endif
}
// Two words (a block's taken bits and rows before, or two slot keys) in one 16-byte load.
__device__ __forceinline__ ulonglong2 hps_block_load(const u64* p, u64 policy) {
#ifdef INDEX_NO_POLICY
    return __ldg((const ulonglong2*)p);
#else
    ulonglong2 v;
    asm("ld.global.nc.L2::cache_hint.v2.u64 {%0,%1}, [%2], %3;" : "=l"(v.x), "=l"(v.y) : "l"(p), "l"(policy));
    return v;
#endif
}

// The row of (key, member) in a ranked index, or -1: the key sits in one
// of two buckets of four slots (from the low and the high half of its
// hash, as GPUTableIndex.buckets), read one after the other (reading both
// at once doubles the index's DRAM reads and was slower); its row is the
// number of taken slots before its own.
__device__ __forceinline__ long long hps_find_ranked(const long long* __restrict__ slotKeys,
                                                     const u64* __restrict__ blocks,
                                                     const unsigned short* __restrict__ slotMembers,
                                                     u32 capacity, long long key, int member) {
    const u64 policy = hps_index_policy();
    const u64 h = hps_hash(key, member);
    const u32 buckets = capacity >> 2;
    u32 bucket[2];
    bucket[0] = hps_slot(h, buckets);
    bucket[1] = hps_slot(h >> 32, buckets);
    if (bucket[1] == bucket[0]) bucket[1] = bucket[0] + 1 == buckets ? 0 : bucket[0] + 1;
    // The first bucket, then the second: most keys sit in their first.
    for (int c = 0; c < 2; c++) {
        const u32 first = bucket[c] * 4;
        const ulonglong2 a = hps_block_load((const u64*)slotKeys + first, policy);
        const ulonglong2 b = hps_block_load((const u64*)slotKeys + first + 2, policy);
        const ulonglong2 block = hps_block_load(blocks + (first >> 6) * 2, policy);
        const u64 members = slotMembers ? hps_index_load((const u64*)(slotMembers + first), policy) : 0;
        const u64 held[4] = {a.x, a.y, b.x, b.y};
        #pragma unroll
        for (int j = 0; j < 4; j++) {
            const u64 bit = 1ull << ((first + j) & 63);
            if ((block.x & bit) && (long long)held[j] == key
                && (!slotMembers || (int)((members >> (16 * j)) & 0xFFFFu) == member))
                return (long long)block.y + __popcll(block.x & (bit - 1));
        }
    }
    return -1;
}

#if DIM % 4 == 0
#define UNITS (DIM / 4)
typedef float4 unit_t;
__device__ __forceinline__ float4 hps_fill(float v) { return make_float4(v, v, v, v); }
#else
#define UNITS DIM
typedef float unit_t;
__device__ __forceinline__ float hps_fill(float v) { return v; }
#endif

// How a table's rows are stored (VectorStorage): 0 fp32, 1 fp16, 2 bf16,
// 3 int8 (float scale and bias, then a byte per element: q × scale + bias,
// rounded twice as the CPU does: hps_dequant), 4 fp8 e4m3 (float scale and
// 4 bytes of padding, then a byte per element: fp8 × scale). A row is
// ROW_BYTES bytes, a multiple of 8, its parameters first (PARAM_BYTES); the
// host quantizes (VectorCodec) and the kernels decode with the same
// arithmetic, so the CPU and the GPU return the same floats. Outputs are float32.
#ifndef STORAGE
#define STORAGE 0
#endif
#ifndef ROW_BYTES
#define ROW_BYTES (DIM * 4)
#endif
#if STORAGE == 3 || STORAGE == 4
#define PARAM_BYTES 8
#else
#define PARAM_BYTES 0
#endif

__device__ __forceinline__ float hps_half(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ float hps_bf16(unsigned short b) { return __uint_as_float(((u32)b) << 16); }
// int8: q × scale + bias, without contraction into a fused multiply-add.
__device__ __forceinline__ float hps_dequant(u32 q, float scale, float bias) { return __fadd_rn(__fmul_rn((float)q, scale), bias); }
// Two e4m3 codes (the first in the low byte) as floats, exactly (through f16x2).
__device__ __forceinline__ float2 hps_e4m3x2(unsigned short two) {
    u32 h2;
    asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(h2) : "h"(two));
    return make_float2(hps_half((unsigned short)(h2 & 0xFFFFu)), hps_half((unsigned short)(h2 >> 16)));
}
// A 16-bit code's value (fp16 or bf16).
__device__ __forceinline__ float hps_code16(u32 c) {
#if STORAGE == 2
    return hps_bf16((unsigned short)c);
#else
    return hps_half((unsigned short)c);
#endif
}

// One element of a stored row, as float32.
__device__ __forceinline__ float hps_stored_element(const char* row, int e) {
#if STORAGE == 1 || STORAGE == 2
    return hps_code16(((const unsigned short*)row)[e]);
#elif STORAGE == 3
    const float* p = (const float*)row;
    return hps_dequant(((const unsigned char*)(row + PARAM_BYTES))[e], p[0], p[1]);
#elif STORAGE == 4
    return hps_e4m3x2(((const unsigned char*)(row + PARAM_BYTES))[e]).x * ((const float*)row)[0];
#else
    return ((const float*)row)[e];
#endif
}

#if STORAGE != 0
// A quantized table's lookups decode QE elements per lane load: 4 (8 bytes
// of fp16 or bf16, 4 of int8 or fp8) when DIM is a multiple of 8, else one.
// Its lanes per key are half as many as the loads of a row (LANES, from
// KernelSource): each lane takes two loads of a row, LANES loads apart, so
// that a warp reads twice as many short rows at once while every store
// instruction still writes whole sectors (a lane storing 8 adjacent floats
// left each instruction writing half of every sector it touched, and ran
// at about half the write bandwidth).
#if DIM % 8 == 0
#define QE 4
#if STORAGE == 1 || STORAGE == 2
typedef uint2 qcode_t;
#else
typedef u32 qcode_t;
#endif
#else
#define QE 1
#if STORAGE == 1 || STORAGE == 2
typedef unsigned short qcode_t;
#else
typedef unsigned char qcode_t;
#endif
#endif
#define QUNITS (DIM / QE)
#endif
#define KPS (32 / LANES)                           // keys copied at once by one warp
#ifndef MAX_UNROLL
#define MAX_UNROLL 8
#endif
#define UNROLL ((32 / KPS) < MAX_UNROLL ? (32 / KPS) : MAX_UNROLL)   // steps whose loads go out before their stores
// Output rows are written once and read by the next stage at most:
// streaming stores (evict first) keep them from pushing table rows out of L2.
#ifdef STORE_CACHED
#define HPS_STORE(p, v) (*(p) = (v))
#else
#define HPS_STORE(p, v) __stcs((p), (v))
#endif
#define PER_LANE ((UNITS + LANES - 1) / LANES)     // units of one vector per lane

// Where hps_lookup writes element i of its output: a float, or with
// OUT_FP16 a half (round to nearest even) for callers that take fp16 rows,
// which halves the bytes written. hps_out of a float4 writes elements i…i+3.
#ifdef OUT_FP16
__device__ __forceinline__ u32 hps_to_half(float v) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return h;
}
__device__ __forceinline__ void hps_out(float* out, long long i, float4 v) {
    uint2 w;
    w.x = hps_to_half(v.x) | (hps_to_half(v.y) << 16);
    w.y = hps_to_half(v.z) | (hps_to_half(v.w) << 16);
    HPS_STORE((uint2*)((unsigned short*)out + i), w);
}
__device__ __forceinline__ void hps_out(float* out, long long i, float v) {
    ((unsigned short*)out)[i] = (unsigned short)hps_to_half(v);
}
#else
__device__ __forceinline__ void hps_out(float* out, long long i, float4 v) { HPS_STORE((float4*)(out + i), v); }
__device__ __forceinline__ void hps_out(float* out, long long i, float v) { HPS_STORE(out + i, v); }
#endif

#if STORAGE != 0
#define QPER_LANE ((QUNITS + LANES - 1) / LANES)   // code loads of one vector per lane
// Decodes one load of codes into output elements i… (QE of them).
__device__ __forceinline__ void hps_store_decoded(float* out, long long i, qcode_t c, float scale, float bias) {
#if QE == 4 && (STORAGE == 1 || STORAGE == 2)
    hps_out(out, i, make_float4(hps_code16(c.x & 0xFFFFu), hps_code16(c.x >> 16), hps_code16(c.y & 0xFFFFu), hps_code16(c.y >> 16)));
#elif QE == 4 && STORAGE == 3
    hps_out(out, i, make_float4(hps_dequant(c & 0xFFu, scale, bias), hps_dequant((c >> 8) & 0xFFu, scale, bias),
                                hps_dequant((c >> 16) & 0xFFu, scale, bias), hps_dequant(c >> 24, scale, bias)));
#elif QE == 4 && STORAGE == 4
    const float2 a = hps_e4m3x2((unsigned short)(c & 0xFFFFu)), b = hps_e4m3x2((unsigned short)(c >> 16));
    hps_out(out, i, make_float4(a.x * scale, a.y * scale, b.x * scale, b.y * scale));
#elif STORAGE == 1 || STORAGE == 2
    hps_out(out, i, hps_code16(c));
#elif STORAGE == 3
    hps_out(out, i, hps_dequant(c, scale, bias));
#else
    hps_out(out, i, hps_e4m3x2(c).x * scale);
#endif
}

// A missing key's QE elements: its member's default.
__device__ __forceinline__ void hps_store_fill(float* out, long long i, float v) {
#if QE == 4
    hps_out(out, i, make_float4(v, v, v, v));
#else
    hps_out(out, i, v);
#endif
}
#endif
// Table rows are read once per key: LOAD_L2_256B asks L2 to fetch 256 bytes
// per miss (whole 512-byte rows in two DRAM bursts), LOAD_NO_L1 skips L1.
#if defined(LOAD_L2_256B) && defined(LOAD_NO_L1)
#define HPS_LOAD_HINT "ld.global.nc.L1::no_allocate.L2::256B"
#elif defined(LOAD_L2_256B)
#define HPS_LOAD_HINT "ld.global.nc.L2::256B"
#elif defined(LOAD_NO_L1)
#define HPS_LOAD_HINT "ld.global.nc.L1::no_allocate"
#endif
#ifdef HPS_LOAD_HINT
__device__ __forceinline__ float4 hps_load(const float4* p) {
    float4 v;
    asm(HPS_LOAD_HINT ".v4.f32 {%0,%1,%2,%3}, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(p));
    return v;
}
__device__ __forceinline__ float hps_load(const float* p) {
    float v;
    asm(HPS_LOAD_HINT ".f32 %0, [%1];" : "=f"(v) : "l"(p));
    return v;
}
#define HPS_LOAD(p) hps_load(p)
#else
#define HPS_LOAD(p) __ldg(p)
#endif

// With hostMisses (a lookup whose caller reads the miss count on the host):
// misses points to three words, the count the warps add to, the warps
// done, and the count published for the kernels that follow. The last warp
// of the grid to finish publishes the count there and at hostMisses (host
// memory mapped into the device, read after the stream's synchronize), and
// zeroes the first two words for the next lookup: no copy of a zeroed
// counter before the launch, no copy of the count after it.
__device__ __forceinline__ void hps_publish_misses(u32* misses, u32* hostMisses) {
    if (!hostMisses) return;
    // Each lane's atomics on misses come before its warp counts as done.
    __threadfence();
    __syncwarp();
    if ((threadIdx.x & 31) != 0) return;
    const u32 warps = gridDim.x * (blockDim.x >> 5);
    if (atomicAdd(misses + 1, 1u) != warps - 1) return;
    const u32 count = atomicExch(misses, 0u);
    misses[2] = count;
    misses[1] = 0;
    *(volatile u32*)hostMisses = count;
    __threadfence_system();
}

// Looks up n keys, keysPerWarp (a power of two up to 32) per warp. Keys come as `runs` runs (one per table of
// the request, runStart[runs] == n), run r being member runMember[r] of
// the table. layout 0: output row i for key i. layout 1 (the dense layer's
// concat): run r's key j of sample s = j / keysPerSample goes to row
// (s * runs + r) * keysPerSample + j % keysPerSample. A missing key's row
// is its member's default value, and *misses counts it; with missIndex,
// its key index is written at missIndex[k] (k in no particular order).
// With stamps (a dynamic cache), a hit row's stamp becomes epoch.
//
// Why this shape: each lane first resolves its own key (up to 32
// independent probes in flight per warp), then the warp copies the vectors,
// KPS at a time, issuing UNROLL vectors' loads before their stores, so that
// a warp keeps several rows in flight instead of one dependent chain per
// key. Small batches take fewer keys per warp so that they still fill the GPU.
extern "C" __global__ void hps_lookup(
    const KEY_T* __restrict__ keys, int n,
    const int* __restrict__ runStart, const int* __restrict__ runMember, int runs,
    const Slot* __restrict__ slots, u32 capacity, u32 rowBits,
    const float* __restrict__ vectors, const float* __restrict__ defaults,
    float* __restrict__ out, int layout, int keysPerSample, u32* __restrict__ misses, int keysPerWarp,
    u32* __restrict__ stamps, u32 epoch, int* __restrict__ missIndex,
    const u64* __restrict__ rankBlocks, const unsigned short* __restrict__ slotMembers, u32* hostMisses)
{
    const unsigned FULL = 0xFFFFFFFFu;
    const int lane = threadIdx.x & 31;
    const long long base = (((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5) * keysPerWarp;
    if (base >= n) {
        hps_publish_misses(misses, hostMisses);
        return;
    }
    const int count = (n - base) < keysPerWarp ? (int)(n - base) : keysPerWarp;

    // Phase 1: lane l resolves key base + l to a source row and an output row.
    long long row = -1, o = 0;
    float fill = 0.0f;
    const bool mine = lane < count;
    if (mine) {
        const long long i = base + lane;
        int r = 0;
        while (r + 1 < runs && runStart[r + 1] <= i) r++;
        const int member = runMember[r];
#ifdef DIAG_NO_INDEX
        // Tuning only, wrong vectors: a row from the key without the index,
        // to measure the gather alone (a static table at its usual load holds more than capacity / 2 rows).
        row = (long long)((u64)keys[i] % (u64)(capacity / 2));
#else
        // A static table's ranked index, or a dynamic cache's slots.
        row = rankBlocks ? hps_find_ranked((const long long*)slots, rankBlocks, slotMembers, capacity, (long long)keys[i], member)
                         : hps_find_row(slots, capacity, rowBits, (long long)keys[i], member);
#endif
        o = i;
        if (layout == 1) {
            const long long j = i - runStart[r];
            const long long sample = j / keysPerSample;
            o = (sample * runs + r) * keysPerSample + (j - sample * keysPerSample);
        }
        fill = defaults[member];
        if (row >= 0 && stamps) stamps[row] = epoch;
    }
    const unsigned missed = __ballot_sync(FULL, mine && row < 0);
    if (missed && misses) {
        u32 first = 0;
        if (lane == 0) first = atomicAdd(misses, (u32)__popc(missed));
        first = __shfl_sync(FULL, first, 0);
        if (missIndex && ((missed >> lane) & 1u))
            missIndex[first + __popc(missed & ((1u << lane) - 1u))] = (int)(base + lane);
    }

    // Phase 2: copy, KPS keys per step, UNROLL steps of loads before their stores.
    const int sub = lane / LANES, sl = lane % LANES;
#if STORAGE != 0
    // A quantized table: the same steps, each lane loading QPER_LANE loads of
    // QE codes of a row (a warp reads KPS short rows at once) and decoding
    // them as it stores.
    for (int j0 = 0; j0 < count; j0 += KPS * UNROLL) {
        qcode_t buffer[UNROLL][QPER_LANE];
        long long target[UNROLL];
        bool valid[UNROLL], hit[UNROLL];
        float scale[UNROLL], bias[UNROLL], fillValue[UNROLL];
        #pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int j = j0 + u * KPS + sub;
            const long long r = __shfl_sync(FULL, row, j & 31);
            target[u] = __shfl_sync(FULL, o, j & 31);
            fillValue[u] = __shfl_sync(FULL, fill, j & 31);
            valid[u] = j < count;
            hit[u] = r >= 0;
            const char* stored = (const char*)vectors + (r < 0 ? 0 : r) * (long long)ROW_BYTES;
            scale[u] = PARAM_BYTES > 0 && valid[u] && hit[u] ? __ldg((const float*)stored) : 0.0f;
            bias[u] = STORAGE == 3 && valid[u] && hit[u] ? __ldg((const float*)stored + 1) : 0.0f;
            const qcode_t* src = reinterpret_cast<const qcode_t*>(stored + PARAM_BYTES);
            #pragma unroll
            for (int p = 0; p < QPER_LANE; p++) {
                const int e = sl + p * LANES;
                if (valid[u] && hit[u] && e < QUNITS) buffer[u][p] = __ldg(src + e);
            }
        }
        #pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const long long first = target[u] * DIM;
            #pragma unroll
            for (int p = 0; p < QPER_LANE; p++) {
                const int e = sl + p * LANES;
                if (valid[u] && e < QUNITS) {
                    if (hit[u]) hps_store_decoded(out, first + e * QE, buffer[u][p], scale[u], bias[u]);
                    else hps_store_fill(out, first + e * QE, fillValue[u]);
                }
            }
        }
    }
#else
    for (int j0 = 0; j0 < count; j0 += KPS * UNROLL) {
        unit_t buffer[UNROLL][PER_LANE];
        long long target[UNROLL];
        bool valid[UNROLL];
        #pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int j = j0 + u * KPS + sub;
            const long long r = __shfl_sync(FULL, row, j & 31);
            target[u] = __shfl_sync(FULL, o, j & 31);
            const float d = __shfl_sync(FULL, fill, j & 31);
            valid[u] = j < count;
            const unit_t* src = reinterpret_cast<const unit_t*>(vectors + (r < 0 ? 0 : r) * DIM);
            #pragma unroll
            for (int p = 0; p < PER_LANE; p++) {
                const int e = sl + p * LANES;
                if (valid[u] && e < UNITS) buffer[u][p] = r >= 0 ? HPS_LOAD(src + e) : hps_fill(d);
            }
        }
        #pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const long long first = target[u] * DIM;
            #pragma unroll
            for (int p = 0; p < PER_LANE; p++) {
                const int e = sl + p * LANES;
                if (valid[u] && e < UNITS) hps_out(out, first + e * (DIM / UNITS), buffer[u][p]);
            }
        }
    }
#endif
    hps_publish_misses(misses, hostMisses);
}

// Writes count rows: target[rows[i] * DIM ...] = source[i * DIM ...].
extern "C" __global__ void hps_scatter_rows(const int* __restrict__ rows, const float* __restrict__ source,
                                            int count, float* __restrict__ target)
{
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long i = t / DIM;
    if (i >= count) return;
    const int e = (int)(t - i * DIM);
    target[(long long)rows[i] * DIM + e] = source[i * DIM + e];
}

// Writes count stored rows (ROW_BYTES each, as STORAGE stores them):
// stored row rows[i] of target = stored row i of source. A dynamic
// cache's refresh.
extern "C" __global__ void hps_scatter_stored_rows(const int* __restrict__ rows, const u32* __restrict__ source,
                                                   int count, u32* __restrict__ target)
{
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long i = t / (ROW_BYTES / 4);
    if (i >= count) return;
    const int w = (int)(t - i * (ROW_BYTES / 4));
    target[(long long)rows[i] * (ROW_BYTES / 4) + w] = source[i * (ROW_BYTES / 4) + w];
}

// Copies one stored row (ROW_BYTES, a multiple of 4) a word per lane of a warp.
__device__ __forceinline__ void hps_copy_stored_row(const void* from, void* to, int lane) {
    const u32* src = (const u32*)from;
    u32* dst = (u32*)to;
    for (int w = lane; w < ROW_BYTES / 4; w += 32) dst[w] = src[w];
}

// Online updates of the rows a GPU table holds. For k < count, one warp
// each: the row of (keys[k], member) takes row k of source, and *updated
// counts it; a key the table does not hold is skipped. The keys are
// distinct (two warps never write one row). Rows are copied as ROW_BYTES
// bytes: a quantized table's update comes quantized (VectorCodec on the
// host). A static table's ranked index:
extern "C" __global__ void hps_table_update(const long long* __restrict__ keys, int member, int count,
                                            const long long* __restrict__ slotKeys, const u64* __restrict__ blocks,
                                            const unsigned short* __restrict__ slotMembers, u32 capacity,
                                            const float* __restrict__ source, float* __restrict__ target,
                                            u32* __restrict__ updated)
{
    const long long k = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (k >= count) return;
    const long long row = hps_find_ranked(slotKeys, blocks, slotMembers, capacity, keys[k], member);
    if (row < 0) return;
    hps_copy_stored_row((const u32*)source + k * (ROW_BYTES / 4), (u32*)target + row * (ROW_BYTES / 4), lane);
    if (lane == 0) atomicAdd(updated, 1u);
}

// The same for a dynamic cache's index (no insert runs meanwhile: the
// cache's lock is held, so no slot is HPS_BUSY); its rows are stored as
// STORAGE says too.
extern "C" __global__ void hps_cache_update(const long long* __restrict__ keys, int member, int count,
                                            const Slot* __restrict__ slots, u32 slotCapacity, u32 rowBits,
                                            const float* __restrict__ source, float* __restrict__ target,
                                            u32* __restrict__ updated)
{
    const long long k = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (k >= count) return;
    const long long row = hps_find_row(slots, slotCapacity, rowBits, keys[k], member);
    if (row < 0) return;
    hps_copy_stored_row((const u32*)source + k * (ROW_BYTES / 4), (u32*)target + row * (ROW_BYTES / 4), lane);
    if (lane == 0) atomicAdd(updated, 1u);
}

// A dynamic cache's stamps: the lookup epoch of each row's last use, or
// HPS_FREE_ROW for a row that holds no key.
#define HPS_FREE_ROW 0xFFFFFFFFu

__device__ __forceinline__ int hps_stamp_bin(u32 s, u32 lo, int bins) {
    return s < lo ? 0 : (int)min((u32)(bins - 1), s - lo);
}

// Counts the held rows by the epoch of their last use: bin s - lo (older
// stamps in bin 0, newer in the last). Lanes with the same bin add once.
extern "C" __global__ void hps_stamp_histogram(const u32* __restrict__ stamps, int capacity, u32 lo, int bins,
                                               u32* __restrict__ histogram)
{
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    const u32 s = row < capacity ? stamps[row] : HPS_FREE_ROW;
    const bool held = s != HPS_FREE_ROW;
    const unsigned active = __ballot_sync(0xFFFFFFFFu, held);
    if (!held) return;
    const int bin = hps_stamp_bin(s, lo, bins);
    const unsigned same = __match_any_sync(active, bin);
    if (__ffs(same) - 1 == (int)(threadIdx.x & 31)) atomicAdd(&histogram[bin], (u32)__popc(same));
}

// Frees the least recently used rows: every held row of a bin under
// cutoff, and atCutoff rows of bin cutoff. Each one's stamp becomes free,
// its index slot a tombstone, and its number goes on the free stack
// (freeRows[0 ..< *freeCount]); counters[0] counts the rows of bin cutoff
// taken, counters[1] all rows freed.
extern "C" __global__ void hps_stamp_select(u32* __restrict__ stamps, int capacity, u32 lo, int bins, int cutoff,
                                            u32 atCutoff, u32* __restrict__ counters, Slot* __restrict__ slots,
                                            const u32* __restrict__ rowSlots, int* __restrict__ freeRows,
                                            int* __restrict__ freeCount)
{
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= capacity) return;
    const u32 s = stamps[row];
    if (s == HPS_FREE_ROW) return;
    const int bin = hps_stamp_bin(s, lo, bins);
    bool evict = bin < cutoff;
    if (bin == cutoff) evict = atomicAdd(&counters[0], 1u) < atCutoff;
    if (!evict) return;
    stamps[row] = HPS_FREE_ROW;
    slots[rowSlots[row]].ref = HPS_TOMB;
    freeRows[atomicAdd(freeCount, 1)] = row;
    atomicAdd(&counters[1], 1u);
}

// The misses of a lookup as a plan: for k < *misses, the key, member and
// output row of key missIndex[k] (runs and layout as in hps_lookup).
extern "C" __global__ void hps_miss_plan(const KEY_T* __restrict__ keys, const int* __restrict__ missIndex,
                                         const u32* __restrict__ misses,
                                         const int* __restrict__ runStart, const int* __restrict__ runMember, int runs,
                                         int layout, int keysPerSample, long long* __restrict__ planKeys,
                                         int* __restrict__ planMembers, long long* __restrict__ planOut)
{
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (int)*misses) return;
    const long long i = missIndex[k];
    int r = 0;
    while (r + 1 < runs && runStart[r + 1] <= i) r++;
    long long o = i;
    if (layout == 1) {
        const long long j = i - runStart[r];
        const long long sample = j / keysPerSample;
        o = (sample * runs + r) * keysPerSample + (j - sample * keysPerSample);
    }
    planKeys[k] = (long long)keys[i];
    planMembers[k] = runMember[r];
    planOut[k] = o;
}

// For k < *count: the row of (keys[k], members[k]) in a static table's ranked index, or -1.
extern "C" __global__ void hps_probe_rows(const long long* __restrict__ keys, const int* __restrict__ members,
                                          const u32* __restrict__ count, const long long* __restrict__ slotKeys,
                                          const u64* __restrict__ blocks, const unsigned short* __restrict__ slotMembers,
                                          u32 capacity, long long* __restrict__ rows)
{
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (int)*count) return;
    rows[k] = hps_find_ranked(slotKeys, blocks, slotMembers, capacity, keys[k], members[k]);
}

// For k < *count, one warp each: target row dstRows[k] = source row
// srcRows[k] (stored as STORAGE says: a uvm cache's table), or the
// member's default where that is -1.
extern "C" __global__ void hps_fill_rows(const long long* __restrict__ srcRows, const long long* __restrict__ dstRows,
                                         const int* __restrict__ members, const u32* __restrict__ count,
                                         const float* __restrict__ source, const float* __restrict__ defaults,
                                         float* __restrict__ target)
{
    const long long k = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (k >= (long long)*count) return;
    const long long from = srcRows[k];
    float* dst = target + dstRows[k] * DIM;
    if (from >= 0) {
        const char* src = (const char*)source + from * (long long)ROW_BYTES;
        for (int e = lane; e < DIM; e += 32) HPS_STORE(dst + e, hps_stored_element(src, e));
    } else {
        const float d = defaults[members[k]];
        for (int e = lane; e < DIM; e += 32) HPS_STORE(dst + e, d);
    }
}

// Finds (key, member) in a dynamic cache's index, or claims the first
// empty slot of its probe for it: the slot is left HPS_BUSY with the key
// written, for the caller to point at a row or to empty again. Returns
// the claimed slot, or -1 when the key is held already. A thread never
// probes past a busy slot, so emptying one again breaks no probe.
__device__ int hps_find_or_claim(Slot* slots, u32 capacity, u32 rowBits, long long key, int member) {
    u32 s = hps_slot(hps_hash(key, member), capacity);
    while (true) {
        Slot* slot = &slots[s];
        const u32 ref = atomicAdd(&slot->ref, 0u);
        if (ref == 0u) {
            if (atomicCAS(&slot->ref, 0u, HPS_BUSY) != 0u) continue;   // lost the slot: look again
            slot->key = key;
            return (int)s;
        }
        if (ref == HPS_BUSY) continue;                                  // being written: look again
        if (ref != HPS_TOMB) {
            __threadfence();
            const long long held = *((volatile long long*)&slot->key);
            if (held == key && (rowBits == 32 || (int)((ref - 1u) >> rowBits) == member)) return -1;
        }
        s = (s + 1 == capacity) ? 0 : s + 1;
    }
}

// Points a claimed slot at row.
__device__ __forceinline__ void hps_publish(Slot* slots, int s, u32 rowBits, int member, int row) {
    __threadfence();
    atomicExch(&slots[s].ref, (((u32)member << rowBits) | (u32)row) + 1u);
}

// Inserts the keys of a plan, one warp each (k < *count): a key whose
// srcRows[k] is -1 (found nowhere) or that is held already is skipped;
// otherwise it takes a row off the free stack, its stored row is copied
// from source row srcRows[k] (the cache and its source store rows alike,
// as STORAGE says: a uvm cache's table, or the tiers' rows encoded on the
// host), and its stamp is epoch. With no row left, the key is skipped and
// counted in *lacking. *inserted counts the inserted.
extern "C" __global__ void hps_cache_insert(const long long* __restrict__ keys, const int* __restrict__ members,
                                            const long long* __restrict__ srcRows, const u32* __restrict__ count,
                                            const float* __restrict__ source, Slot* slots, u32 capacity, u32 rowBits,
                                            float* __restrict__ vectors, u32* __restrict__ stamps, u32 epoch,
                                            long long* __restrict__ rowKeys, int* __restrict__ rowMembers,
                                            u32* __restrict__ rowSlots, int* __restrict__ freeRows,
                                            int* __restrict__ freeCount, u32* __restrict__ inserted,
                                            u32* __restrict__ lacking)
{
    const long long k = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (k >= (long long)*count) return;
    const long long from = srcRows[k];
    if (from < 0) return;
    int row = -1;
    if (lane == 0) {
        const long long key = keys[k];
        const int member = members[k];
        const int slot = hps_find_or_claim(slots, capacity, rowBits, key, member);
        if (slot >= 0) {
            const int left = atomicSub(freeCount, 1);
            if (left > 0) {
                row = freeRows[left - 1];
                rowKeys[row] = key;
                rowMembers[row] = member;
                rowSlots[row] = (u32)slot;
                stamps[row] = epoch;
                hps_publish(slots, slot, rowBits, member, row);
                atomicAdd(inserted, 1u);
            } else {
                atomicAdd(freeCount, 1);
                atomicExch(&slots[slot].ref, 0u);                    // no row: the slot is empty again
                atomicAdd(lacking, 1u);
            }
        }
    }
    row = __shfl_sync(0xFFFFFFFFu, row, 0);
    if (row < 0) return;
    hps_copy_stored_row((const u32*)source + from * (ROW_BYTES / 4), (u32*)vectors + (long long)row * (ROW_BYTES / 4), lane);
}

// Rebuilds a dynamic cache's index from its rows (after the slots were
// cleared), dropping the tombstones: one thread per held row.
extern "C" __global__ void hps_cache_rehash(const u32* __restrict__ stamps, int rows, const long long* __restrict__ rowKeys,
                                            const int* __restrict__ rowMembers, u32* __restrict__ rowSlots,
                                            Slot* slots, u32 capacity, u32 rowBits)
{
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= rows || stamps[row] == HPS_FREE_ROW) return;
    const int slot = hps_find_or_claim(slots, capacity, rowBits, rowKeys[row], rowMembers[row]);
    if (slot < 0) return;   // not reached: a key is held by one row
    rowSlots[row] = (u32)slot;
    hps_publish(slots, slot, rowBits, rowMembers[row], row);
}

// Before the epochs wrap: every held row's stamp becomes 1 (the order of
// use is forgotten once per four billion lookups).
extern "C" __global__ void hps_stamp_restart(u32* __restrict__ stamps, int capacity)
{
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row < capacity && stamps[row] != HPS_FREE_ROW) stamps[row] = 1;
}

// prediction[s] = bias + dot(input[s], weights): one block per sample.
extern "C" __global__ void hps_dense(const float* __restrict__ input, int features,
                                     const float* __restrict__ weights, float bias, float* __restrict__ out)
{
    const float* row = input + (long long)blockIdx.x * features;
    float acc = 0.0f;
    if ((features & 3) == 0) {
        const float4* row4 = reinterpret_cast<const float4*>(row);
        const float4* w4 = reinterpret_cast<const float4*>(weights);
        for (int f = threadIdx.x; f < features / 4; f += blockDim.x) {
            const float4 x = row4[f], w = __ldg(w4 + f);
            acc += x.x * w.x + x.y * w.y + x.z * w.z + x.w * w.w;
        }
    } else {
        for (int f = threadIdx.x; f < features; f += blockDim.x) acc += row[f] * weights[f];
    }
    for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_down_sync(0xFFFFFFFFu, acc, offset);
    __shared__ float partial[32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) partial[warp] = acc;
    __syncthreads();
    if (warp == 0) {
        acc = lane < (int)(blockDim.x / 32) ? partial[lane] : 0.0f;
        for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_down_sync(0xFFFFFFFFu, acc, offset);
        if (lane == 0) out[blockIdx.x] = acc + bias;
    }
}

// The unfused model's tf.concat: tables' outputs [tables][samples * width]
// → [samples][tables][width], a float4 per thread (width % 4 == 0).
extern "C" __global__ void hps_concat(const float* __restrict__ tablesOut, float* __restrict__ out,
                                      int tables, int samples, int width)
{
    const long long q = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long quads = (long long)tables * samples * width / 4;
    if (q >= quads) return;
    const long long e = q * 4;
    const long long perSample = (long long)tables * width;
    const long long s = e / perSample;
    const long long rest = e - s * perSample;
    const long long table = rest / width;
    const long long c = rest - table * width;
    reinterpret_cast<float4*>(out)[q] =
        *reinterpret_cast<const float4*>(tablesOut + (table * samples + s) * width + c);
}
