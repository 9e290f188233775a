"""Finds swift-hps's C library (libhps_c.so) and its header, and compiles the
TensorFlow custom op (lookup_ops.cc) against the installed TensorFlow, once:
the library goes to a cache folder named by what it was built from, so a new
TensorFlow, a rebuilt libhps_c.so or a changed source builds it again.

libhps_c.so and hps.h are found by `swift_hps.library`; the compiled op goes
to $HPS_TF_OPS_DIR, else ~/.cache/swift-hps.
"""

import fcntl
import hashlib
import os
import subprocess

from swift_hps import library

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildError(RuntimeError):
    """What went wrong compiling the op, in one sentence and the compiler's output."""


def op_library():
    """The path of the compiled op library, compiling it if needed."""
    import tensorflow as tf

    library_path, include = library.c_library_path(), library.c_include_folder()
    source = os.path.join(HERE, "lookup_ops.cc")
    digest = hashlib.sha256()
    for part in (open(source, "rb").read(), open(os.path.join(include, "hps.h"), "rb").read(),
                 tf.__version__.encode(), library_path.encode(), str(os.stat(library_path).st_mtime_ns).encode()):
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
                   + [f"-L{os.path.dirname(library_path)}", "-l:libhps_c.so", f"-Wl,-rpath,{os.path.dirname(library_path)}"])
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"compiling the TensorFlow op failed ({' '.join(command)}):\n{result.stderr[-4000:]}")
        os.replace(temporary, target)
    return target
