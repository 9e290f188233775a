#ifndef CHPS_SUPPORT_H
#define CHPS_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/// Asks the CPU to start loading the cache line at `address` for reading.
/// Batched lookups issue this a few keys ahead so that index probes and
/// vector copies overlap their memory latency.
static inline void hps_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

/// `hps_prefetch` of every 64-byte line of `bytes` bytes from `address`:
/// a whole vector, a few keys before it is copied.
static inline void hps_prefetch_lines(const void *address, size_t bytes) {
    for (size_t line = 0; line < bytes; line += 64) hps_prefetch((const char *)address + line);
}

/// One bit per slot of a 64-byte index bucket (five 8-byte keys, then five
/// refs) whose key equals `key`: bit s for slot s. With SSE2 (every x86-64)
/// the five compares are three vector compares and no branch, so a lookup
/// that finds its key in slot 3 does not first mispredict slots 0 to 2.
static inline unsigned hps_bucket_key_matches(const void *bucket, int64_t key) {
    const int64_t *keys = (const int64_t *)bucket;
#if defined(__SSE2__)
    const __m128i wanted = _mm_set1_epi64x(key);
    __m128i low = _mm_cmpeq_epi32(_mm_loadu_si128((const __m128i *)keys), wanted);
    __m128i high = _mm_cmpeq_epi32(_mm_loadu_si128((const __m128i *)(keys + 2)), wanted);
    // A key matches when both of its 32-bit halves do.
    low = _mm_and_si128(low, _mm_shuffle_epi32(low, _MM_SHUFFLE(2, 3, 0, 1)));
    high = _mm_and_si128(high, _mm_shuffle_epi32(high, _MM_SHUFFLE(2, 3, 0, 1)));
    return (unsigned)_mm_movemask_pd(_mm_castsi128_pd(low))
        | ((unsigned)_mm_movemask_pd(_mm_castsi128_pd(high)) << 2)
        | ((unsigned)(keys[4] == key) << 4);
#else
    unsigned matches = 0;
    for (unsigned slot = 0; slot < 5; slot++) matches |= (unsigned)(keys[slot] == key) << slot;
    return matches;
#endif
}

/// Copies `bytes` bytes to `target` with non-temporal (streaming) stores,
/// which write whole cache lines to memory without first reading them, as
/// glibc's memcpy does for copies larger than the caches. Used for lookups
/// whose output is far larger than the caches. On a CPU without AVX-512, or
/// when `target` or `bytes` is not a multiple of 16, it is memcpy (16- and
/// 32-byte streaming stores were slower than memcpy on the development
/// machine in one of two sizes measured). Call `hps_streaming_fence` before
/// another thread reads the output.
void hps_copy_streaming(void *target, const void *source, size_t bytes);

/// Orders earlier streaming stores before later stores (sfence); a no-op
/// where `hps_copy_streaming` is memcpy.
void hps_streaming_fence(void);

/// Linux's mremap with MREMAP_MAYMOVE, which Glibc declares only under
/// _GNU_SOURCE: grows a mapping without copying its pages.
void *hps_mremap_maymove(void *address, size_t old_size, size_t new_size);

/// Keeps freed blocks of up to `bytes` in the heap (glibc's M_MMAP_THRESHOLD
/// and M_TRIM_THRESHOLD), so that a buffer of tens of megabytes allocated
/// for every request reuses its pages instead of faulting fresh ones in.
void hps_keep_freed_blocks(int bytes);

/// Registers a read-only shared file mapping whose file may shrink while it
/// is read (see mapped_regions.c): a SIGBUS from reading it past the file's
/// end then counts a fault for the region and replaces its pages with zeros
/// instead of ending the process. Installs the SIGBUS handler on first use.
/// Returns the region's slot, or -1 (no slot free, or the handler could not
/// be installed): the mapping is then read unprotected.
int hps_mapped_region_register(const void *base, size_t length);

/// Forgets a region before it is unmapped.
void hps_mapped_region_unregister(int slot);

/// SIGBUS faults counted for the region of `slot` since it was registered
/// (0 for -1): once non-zero, its pages read as zeros.
uint64_t hps_mapped_region_faults(int slot);

#endif
