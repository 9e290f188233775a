#define _GNU_SOURCE
#include <malloc.h>
#include <string.h>
#include <sys/mman.h>
#include "CHPSSupport.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

void *hps_mremap_maymove(void *address, size_t old_size, size_t new_size) {
    return mremap(address, old_size, new_size, MREMAP_MAYMOVE);
}


void hps_keep_freed_blocks(int bytes) {
    mallopt(M_MMAP_THRESHOLD, bytes);
    mallopt(M_TRIM_THRESHOLD, bytes * 4);
}

#if defined(__x86_64__)
/// Non-temporal copy with 64-byte stores where `target` is 64-byte aligned
/// and 16-byte ones before and after (`target` and `bytes` multiples of 16).
__attribute__((target("avx512f")))
static void copy_streaming_avx512(char *target, const char *source, size_t bytes) {
    while ((((uintptr_t)target) & 63) != 0 && bytes > 0) {
        _mm_stream_si128((__m128i *)target, _mm_loadu_si128((const __m128i *)source));
        target += 16; source += 16; bytes -= 16;
    }
    while (bytes >= 64) {
        _mm512_stream_si512((__m512i *)target, _mm512_loadu_si512(source));
        target += 64; source += 64; bytes -= 64;
    }
    while (bytes > 0) {
        _mm_stream_si128((__m128i *)target, _mm_loadu_si128((const __m128i *)source));
        target += 16; source += 16; bytes -= 16;
    }
}

/// 1: memcpy; 2: AVX-512 streaming stores; 0: not yet known.
static int streaming_kind = 0;
#endif

void hps_copy_streaming(void *target, const void *source, size_t bytes) {
#if defined(__x86_64__)
    if ((((uintptr_t)target) & 15) == 0 && (bytes & 15) == 0) {
        int kind = __atomic_load_n(&streaming_kind, __ATOMIC_RELAXED);
        if (kind == 0) {
            __builtin_cpu_init();
            kind = __builtin_cpu_supports("avx512f") ? 2 : 1;
            __atomic_store_n(&streaming_kind, kind, __ATOMIC_RELAXED);
        }
        if (kind == 2) {
            copy_streaming_avx512(target, source, bytes);
            return;
        }
    }
#endif
    memcpy(target, source, bytes);
}

void hps_streaming_fence(void) {
#if defined(__x86_64__)
    _mm_sfence();
#endif
}
