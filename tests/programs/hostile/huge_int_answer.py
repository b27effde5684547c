"""While being loaded, writes a probe answer holding a 5000-digit integer to every possible answer descriptor."""
import os

from _base import write_to_answer_fds

ANSWER = b'{"ok": true, "style": "prism", "accepts_gpu_mem": false, "n": ' + b"7" * 5000 + b"}"
write_to_answer_fds(ANSWER)
os._exit(0)


def compute_model_placement(gpu_num, models):
    return {}
