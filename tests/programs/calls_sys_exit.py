"""Exits the interpreter with sys.exit."""
import sys


def compute_model_placement(gpu_num, models):
    sys.exit(3)
