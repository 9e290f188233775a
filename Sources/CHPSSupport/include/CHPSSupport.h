#ifndef CHPS_SUPPORT_H
#define CHPS_SUPPORT_H

#include <stdint.h>

/// Asks the CPU to start loading the cache line at `address` for reading.
/// Batched lookups issue this a few keys ahead so that index probes and
/// vector copies overlap their memory latency.
static inline void hps_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
