"""Start-up in fresh processes: ``import lattice`` and the first compile of ``dot``."""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_KERNEL = '''
import numpy as np
import lattice as lt

@lt.kernel(cache=CACHE)
def dot(a: lt.f32["n"], b: lt.f32["n"]) -> lt.f32:
    return lt.sum(a * b)

dot(np.ones(8, np.float32), np.ones(8, np.float32))
'''


def _env(tmp):
    env = dict(os.environ, LATTICE_CACHE_DIR=tmp)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    return env


class Startup:
    timeout = 300
    number = 1
    repeat = 5

    def setup(self):
        self.tmp = tempfile.mkdtemp()
        for cache in (False, True):
            with open(os.path.join(self.tmp, f"k{int(cache)}.py"), "w") as f:
                f.write(_KERNEL.replace("CACHE", str(cache)))
        self._run("k1.py")  # fills the disk cache

    def _run(self, script):
        subprocess.run([sys.executable, os.path.join(self.tmp, script)], env=_env(self.tmp),
                       check=True)

    def time_import(self):
        subprocess.run([sys.executable, "-c", "import lattice"], env=_env(self.tmp), check=True)

    def time_import_and_first_compile(self):
        self._run("k0.py")

    def time_import_and_disk_cached_load(self):
        self._run("k1.py")
