"""`pip install ./python`: the packages (swift_hps, hierarchical_parameter_server,
hps_torch), with swift-hps's C library and header copied into swift_hps (so the
installed packages find them without the checkout). The
library is the checkout's `.build/release/libhps_c.so` ($HPS_C_LIB if set),
built with `swift build -c release --product hps_c` when missing. The
TensorFlow op is compiled against the installed TensorFlow at first import
(hierarchical_parameter_server/build.py)."""

import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(HERE)


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        library = os.environ.get("HPS_C_LIB") or os.path.join(CHECKOUT, ".build", "release", "libhps_c.so")
        if not os.path.exists(library):
            subprocess.run(["swift", "build", "-c", "release", "--product", "hps_c"], cwd=CHECKOUT, check=True)
        package = os.path.join(self.build_lib, "swift_hps")
        shutil.copy2(library, os.path.join(package, "libhps_c.so"))
        os.makedirs(os.path.join(package, "include"), exist_ok=True)
        shutil.copy2(os.path.join(CHECKOUT, "Sources", "CHPS", "include", "hps.h"), os.path.join(package, "include", "hps.h"))


setup(cmdclass={"build_py": BuildWithLibrary})
