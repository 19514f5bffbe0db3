"""mini_runtime: a small, readable container runtime, built one kernel concept per chapter.

Chapter 01 (processes) is in: a container is a process started from an image's files.
"""

__version__ = "0.1.0"

#: The chapters whose code is in this tree; `mini doctor` and the demo read it.
CHAPTERS_DONE = ("01-processes",)
