"""Allocates memory without bound."""


def compute_model_placement(gpu_num, models):
    hoard = []
    while True:
        hoard.append(bytearray(16 << 20))
