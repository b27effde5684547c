"""While being loaded, writes 100 000 nested brackets to every descriptor that may be the answer channel."""
import os

from _base import write_to_answer_fds

write_to_answer_fds(b"[" * 100_000 + b"]" * 100_000)
os._exit(0)


def compute_model_placement(gpu_num, models):
    return {}
