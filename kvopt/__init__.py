"""kvopt: place LLMs on GPUs to minimise peak KV-cache pressure, and prove how good a placement is."""

from kvopt.model import Instance, KvoptError, Model, Placement, Result

__all__ = ["Instance", "KvoptError", "Model", "Placement", "Result"]
__version__ = "0.1.0"
