"""kvopt as the evaluator of an evolution loop.

``kvopt.integrations.loop`` scores one program file (sandboxed, against the
stored proven optima) into framework-neutral metrics and feedback text;
``openevolve`` and ``shinka`` only adapt that to each framework's contract.
Nothing here raises on a bad program: a program that cannot be scored gets
``combined_score`` 0 and feedback saying why.
"""
