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

/// Linux's mremap with MREMAP_MAYMOVE, which Glibc declares only under
/// _GNU_SOURCE: grows a mapping without copying its pages.
void *hps_mremap_maymove(void *address, size_t old_size, size_t new_size);

/// Keeps freed blocks of up to `bytes` in the heap (glibc's M_MMAP_THRESHOLD
/// and M_TRIM_THRESHOLD), so that a buffer of tens of megabytes allocated
/// for every request reuses its pages instead of faulting fresh ones in.
void hps_keep_freed_blocks(int bytes);

#endif
