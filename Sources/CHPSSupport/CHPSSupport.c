#define _GNU_SOURCE
#include <malloc.h>
#include <sys/mman.h>
#include "CHPSSupport.h"

void *hps_mremap_maymove(void *address, size_t old_size, size_t new_size) {
    return mremap(address, old_size, new_size, MREMAP_MAYMOVE);
}


void hps_keep_freed_blocks(int bytes) {
    mallopt(M_MMAP_THRESHOLD, bytes);
    mallopt(M_TRIM_THRESHOLD, bytes * 4);
}
