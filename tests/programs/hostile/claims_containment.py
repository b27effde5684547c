"""At call time, blames containment: on every possible answer descriptor it writes a failure
"sandbox" (could not apply Landlock), or raises MemoryError itself, or claims a timeout."""
import json
import os

from _base import write_to_answer_fds


def compute_model_placement(gpu_num, models):
    kind = len(models) % 3
    if kind == 0:
        raise MemoryError("pretend the sandbox ran out of memory")
    code = "sandbox" if kind == 1 else "timeout"
    write_to_answer_fds(json.dumps({"ok": False, "failure": code, "reason": "could not apply Landlock"}).encode())
    os._exit(0)
