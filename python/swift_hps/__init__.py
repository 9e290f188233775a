"""What swift-hps's Python packages share: finding libhps_c.so and hps.h,
and a ctypes binding of the C interface (`swift_hps.library`)."""
