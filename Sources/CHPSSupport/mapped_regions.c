#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include "CHPSSupport.h"

/// Mapped file regions whose pages may vanish under us (a model file
/// truncated while it is served), and the SIGBUS handler that keeps the
/// process alive when they do.
///
/// Reading a page of a shared file mapping past the file's end raises SIGBUS,
/// whose default action ends the process. The handler looks the fault address
/// up among the registered regions; if it falls in one, it counts a fault for
/// that region and maps anonymous zero pages over the whole region, so the
/// faulting read and every later one read zeros instead of faulting. The
/// region's owner checks the count after its reads and discards what it read
/// (`hps_mapped_region_faults`). A SIGBUS anywhere else goes to the handler
/// that was installed before, or ends the process as it would have.
///
/// Slots are claimed and released with atomics only; the handler reads them
/// without a lock (everything it calls is async-signal-safe).

#define HPS_MAPPED_REGIONS 4096

struct hps_mapped_region {
    atomic_int claimed;
    _Atomic uintptr_t base;
    _Atomic size_t length;
    _Atomic uint64_t faults;
};

static struct hps_mapped_region regions[HPS_MAPPED_REGIONS];
static struct sigaction previous_action;
static atomic_int handler_state = 0; // 0: none, 1: installing, 2: installed

static void hps_sigbus_handler(int signal_number, siginfo_t *info, void *context) {
    uintptr_t address = (uintptr_t)info->si_addr;
    for (int slot = 0; slot < HPS_MAPPED_REGIONS; slot++) {
        uintptr_t base = atomic_load(&regions[slot].base);
        if (base == 0) continue;
        size_t length = atomic_load(&regions[slot].length);
        if (address < base || address - base >= length) continue;
        // Counted before the zero pages appear: a reader that reads a zero
        // page then sees the count.
        atomic_fetch_add(&regions[slot].faults, 1);
        void *zeros = mmap((void *)base, length, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (zeros != MAP_FAILED) return;
        break;
    }
    // Not ours (or the zero pages could not be mapped): what would have happened.
    if (previous_action.sa_flags & SA_SIGINFO) {
        if (previous_action.sa_sigaction) {
            previous_action.sa_sigaction(signal_number, info, context);
            return;
        }
    } else if (previous_action.sa_handler != SIG_DFL && previous_action.sa_handler != SIG_IGN) {
        previous_action.sa_handler(signal_number);
        return;
    }
    // Default action: restore it; returning re-executes the faulting read.
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigemptyset(&fallback.sa_mask);
    sigaction(SIGBUS, &fallback, NULL);
}

static int hps_install_sigbus_handler(void) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&handler_state, &expected, 1)) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = hps_sigbus_handler;
        action.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&action.sa_mask);
        if (sigaction(SIGBUS, &action, &previous_action) != 0) {
            atomic_store(&handler_state, 0);
            return -1;
        }
        atomic_store(&handler_state, 2);
        return 0;
    }
    while (atomic_load(&handler_state) == 1) { }
    return atomic_load(&handler_state) == 2 ? 0 : -1;
}

int hps_mapped_region_register(const void *base, size_t length) {
    if (base == NULL || length == 0) return -1;
    if (hps_install_sigbus_handler() != 0) return -1;
    for (int slot = 0; slot < HPS_MAPPED_REGIONS; slot++) {
        int expected = 0;
        if (!atomic_compare_exchange_strong(&regions[slot].claimed, &expected, 1)) continue;
        // Length and count first: the handler matches a slot only once its base is set.
        atomic_store(&regions[slot].length, length);
        atomic_store(&regions[slot].faults, 0);
        atomic_store(&regions[slot].base, (uintptr_t)base);
        return slot;
    }
    return -1;
}

void hps_mapped_region_unregister(int slot) {
    if (slot < 0 || slot >= HPS_MAPPED_REGIONS) return;
    atomic_store(&regions[slot].base, 0);
    atomic_store(&regions[slot].claimed, 0);
}

uint64_t hps_mapped_region_faults(int slot) {
    if (slot < 0 || slot >= HPS_MAPPED_REGIONS) return 0;
    return atomic_load(&regions[slot].faults);
}
