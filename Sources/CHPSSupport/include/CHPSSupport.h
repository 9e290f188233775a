#ifndef CHPS_SUPPORT_H
#define CHPS_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

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

#endif
