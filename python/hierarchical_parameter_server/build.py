"""Finds swift-hps's C library (libhps_c.so) and its header, and compiles the
TensorFlow custom op (lookup_ops.cc) against the installed TensorFlow, once:
the library goes to a cache folder named by what it was built from, so a new
TensorFlow, a rebuilt libhps_c.so or a changed source builds it again.

Where things are looked for, first found wins:
- libhps_c.so: $HPS_C_LIB; this package's folder; the swift-hps checkout this
  package sits in (`.build/release`, then `.build/debug`).
- hps.h: $HPS_C_INCLUDE; this package's `include` folder; the checkout's
  `Sources/CHPS/include`.
- the compiled op: $HPS_TF_OPS_DIR, else ~/.cache/swift-hps.
"""

import fcntl
import hashlib
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(os.path.dirname(HERE))


class BuildError(RuntimeError):
    """What is missing, in one sentence."""


def c_library():
    candidates = [os.environ.get("HPS_C_LIB"), os.path.join(HERE, "libhps_c.so"),
                  os.path.join(CHECKOUT, ".build", "release", "libhps_c.so"),
                  os.path.join(CHECKOUT, ".build", "debug", "libhps_c.so")]
    for path in candidates:
        if path and os.path.exists(path):
            return os.path.abspath(path)
    raise BuildError("libhps_c.so was not found: build it with `swift build -c release --product hps_c` in the "
                     f"swift-hps checkout ({CHECKOUT}), or set HPS_C_LIB to its path")


def c_include():
    candidates = [os.environ.get("HPS_C_INCLUDE"), os.path.join(HERE, "include"),
                  os.path.join(CHECKOUT, "Sources", "CHPS", "include")]
    for folder in candidates:
        if folder and os.path.exists(os.path.join(folder, "hps.h")):
            return folder
    raise BuildError("hps.h was not found: set HPS_C_INCLUDE to the folder holding it (Sources/CHPS/include)")


def op_library():
    """The path of the compiled op library, compiling it if needed."""
    import tensorflow as tf

    library, include = c_library(), c_include()
    source = os.path.join(HERE, "lookup_ops.cc")
    digest = hashlib.sha256()
    for part in (open(source, "rb").read(), open(os.path.join(include, "hps.h"), "rb").read(),
                 tf.__version__.encode(), library.encode(), str(os.stat(library).st_mtime_ns).encode()):
        digest.update(part)
    folder = os.environ.get("HPS_TF_OPS_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "swift-hps")
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, f"hps_lookup_ops-{digest.hexdigest()[:16]}.so")
    if os.path.exists(target):
        return target
    with open(os.path.join(folder, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(target):
            return target
        temporary = f"{target}.{os.getpid()}.tmp"
        command = ([os.environ.get("CXX", "g++"), "-shared", "-fPIC", "-O2", source, f"-I{include}", "-o", temporary]
                   + tf.sysconfig.get_compile_flags() + tf.sysconfig.get_link_flags()
                   + [f"-L{os.path.dirname(library)}", "-l:libhps_c.so", f"-Wl,-rpath,{os.path.dirname(library)}"])
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"compiling the TensorFlow op failed ({' '.join(command)}):\n{result.stderr[-4000:]}")
        os.replace(temporary, target)
    return target
