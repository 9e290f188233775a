#define _GNU_SOURCE
#include <sys/mman.h>
#include "CHPSSupport.h"

void *hps_mremap_maymove(void *address, size_t old_size, size_t new_size) {
    return mremap(address, old_size, new_size, MREMAP_MAYMOVE);
}

