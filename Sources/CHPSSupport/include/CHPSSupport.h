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

#endif
