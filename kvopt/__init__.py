"""kvopt: place LLMs on GPUs to minimise peak KV-cache pressure, and prove how good a placement is.

The Python API: ``solve(instance, method) -> Result`` on an ``Instance`` of ``Model``s (see the README).
"""

from kvopt.heuristics.pipeline import PipelineConfig
from kvopt.model import Instance, KvoptError, Model, Placement, Result
from kvopt.solve import solve

__all__ = ["Instance", "KvoptError", "Model", "PipelineConfig", "Placement", "Result", "solve"]
__version__ = "0.1.0"
