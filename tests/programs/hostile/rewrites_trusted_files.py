"""While being loaded (the probe), tries to rewrite what the evaluator trusts, then behaves.

Targets: kvopt's own modules, a .pth file in site-packages, the stored suites and
references next to the kvopt package, and an instances/ folder in the evaluator's
working directory.
"""
import glob
import os
import site

from _base import MARKER, honest_placement, try_write

import kvopt

PACKAGE = os.path.dirname(os.path.abspath(kvopt.__file__))
for module in glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True):
    try_write(module, f"\n# {MARKER}\n")
for folder in site.getsitepackages():
    try_write(os.path.join(folder, f"{MARKER}.pth"), f"# {MARKER}\n", "w")
for reference in glob.glob(os.path.join(os.path.dirname(PACKAGE), "**", "reference.json"), recursive=True):
    try_write(reference, f"\n{MARKER}\n")
for parent in (os.getppid(), 1):
    try:
        cwd = os.readlink(f"/proc/{parent}/cwd")
    except OSError:
        continue
    try_write(os.path.join(cwd, "instances", "adrs50", "reference.json"), f'{{"{MARKER}": 1}}', "w")


def compute_model_placement(gpu_num, models):
    return honest_placement(gpu_num, models)
