"""While being loaded, writes 100 000 nested brackets to every descriptor that may be the answer channel."""
import os

from _base import answer_fds

for fd in answer_fds():
    try:
        os.write(fd, b"[" * 100_000 + b"]" * 100_000)
    except OSError:
        pass
os._exit(0)


def compute_model_placement(gpu_num, models):
    return {}
