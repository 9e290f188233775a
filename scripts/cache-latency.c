// The time of one dependent load against the size of the memory it is drawn
// from: a pointer chase over a random cycle of 64-byte lines in a buffer of
// 1 MB to 1 GB, in transparent huge pages as the store's arenas are. Where the
// time jumps is where this machine's caches end for one core, which tells
// whether a table of a given size is served from a cache or from DRAM.
//
//   cc -O2 -o /tmp/cache-latency scripts/cache-latency.c && /tmp/cache-latency
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/// Where each chase's last offset goes, so that the compiler keeps the chase.
static volatile uint64_t sink;

static uint64_t splitmix(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int main(void) {
    const size_t steps = 2000000;
    printf("| buffer | ns per dependent load |\n| --- | --- |\n");
    for (size_t mb = 1; mb <= 1024; mb *= 2) {
        size_t bytes = mb << 20, lines = bytes / 64;
        char *buffer = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uint32_t *order = malloc(lines * sizeof *order);
        if (buffer == MAP_FAILED || order == NULL) { fprintf(stderr, "out of memory at %zu MB\n", mb); return 1; }
        madvise(buffer, bytes, MADV_HUGEPAGE);
        // A random cycle through every line: each line holds the offset of the next.
        uint64_t state = mb;
        for (size_t i = 0; i < lines; i++) order[i] = (uint32_t)i;
        for (size_t i = lines - 1; i > 0; i--) {
            size_t j = splitmix(&state) % (i + 1);
            uint32_t t = order[i]; order[i] = order[j]; order[j] = t;
        }
        for (size_t i = 0; i < lines; i++) *(uint64_t *)(buffer + (size_t)order[i] * 64) = (uint64_t)order[(i + 1) % lines] * 64;
        uint64_t at = 0;
        for (size_t i = 0; i < steps; i++) at = *(uint64_t *)(buffer + at);  // warm-up
        double start = seconds();
        for (size_t i = 0; i < steps; i++) at = *(uint64_t *)(buffer + at);
        double elapsed = seconds() - start;
        sink = at;
        printf("| %zu MB | %.1f |\n", mb, elapsed / steps * 1e9);
        munmap(buffer, bytes);
        free(order);
    }
    return 0;
}
