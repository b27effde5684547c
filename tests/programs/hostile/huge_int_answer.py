"""While being loaded, writes a probe answer holding a 5000-digit integer to every possible answer descriptor."""
import os

from _base import answer_fds

ANSWER = b'{"ok": true, "style": "prism", "accepts_gpu_mem": false, "n": ' + b"7" * 5000 + b"}"
for fd in answer_fds():
    try:
        os.write(fd, ANSWER)
    except OSError:
        pass
os._exit(0)


def compute_model_placement(gpu_num, models):
    return {}
