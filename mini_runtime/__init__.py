"""mini_runtime: a small, readable container runtime, built one kernel concept per chapter.

Chapters in: 01 processes (a container is a process), 02 rootfs (the image is its whole world),
03 namespaces (its own PID 1, hostname, IPC and network), 04 cgroups (limits, priority,
accounting, control), 05 images (layers, overlayfs copy-on-write, the OCI image layout).
"""

__version__ = "0.1.0"

#: The chapters whose code is in this tree; `mini doctor` and the demo read it.
CHAPTERS_DONE = ("01-processes", "02-rootfs", "03-namespaces", "04-cgroups", "05-images", "06-lifecycle",
                 "07-network")
