"""The `Bench`: the workspace, and each peer set up once, on first use, for the rows.

Why one object: several rows share a peer (docker serves eleven of them), and setting one up
costs seconds (a dockerd, an image loaded). Each is made when the first row needs it and then
remembered; so is its failure, so that every row that needs a peer that cannot run here skips
with the same one line (`Skip`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

from bench import engines, images, measure, netns, oci
from bench.measure import Side
from bench.workspace import Workspace

MIB = 1024 * 1024


class Skip(Exception):
    """This row cannot run here; the message is the one-line reason."""


class Bench:
    """The workspace, and each peer set up once, on first use, and remembered (or its failure,
    so every row that needs a missing peer skips with the same one line)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.launcher = measure.build_launcher(ws.dir)
        self.versions: dict[str, str] = {}
        self.notes: list[str] = []
        self._cache: dict[str, Any] = {}

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            try:
                self._cache[key] = make()
            except (oci.Unavailable, RuntimeError, OSError, subprocess.SubprocessError) as e:
                self._cache[key] = Skip(f"{key}: {e}")
        value = self._cache[key]
        if isinstance(value, Skip):
            raise value
        return value

    def started(self, key: str) -> Any | None:
        """The peer `key` if a row has set it up (None if none did, or it could not run)."""
        value = self._cache.get(key)
        return None if isinstance(value, Skip) else value

    # --- mini -------------------------------------------------------------------------------

    def mini(self, label: str, *args: str) -> Side:
        self.cached("busybox", lambda: images.busybox_rootfs(self.ws))  # built before timing
        return Side(label, [[*images.mini_argv(self.ws), *args]], env=self.ws.env)

    def mini_commands(self) -> str:
        """`mini --help` and `mini run --help`: what commands and flags exist today."""
        return self.cached("mini-help", lambda: images.mini(self.ws, "--help")
                           + images.mini(self.ws, "run", "--help"))

    def requires(self, chapter: str, word: str) -> None:
        """Skip unless `mini --help` (or `run --help`) lists `word`: chapter NN is not there."""
        if word not in self.mini_commands():
            raise Skip(f"needs chapter {chapter}")

    def needs(self, chapter: str, word: str) -> None:
        """Skip: the row waits for a chapter, or (once its command exists) for its code here."""
        self.requires(chapter, word)
        raise Skip(f"mini has `{word.strip()}` now: write this row in bench/rows.py")

    # --- peers ------------------------------------------------------------------------------

    def rootfs(self) -> str:
        return str(self.cached("busybox", lambda: images.busybox_rootfs(self.ws)))

    def oci(self, runtime: str, memory: int | None = None) -> Side:
        mount_ns = self.cached("crun-mask", self._crun_mask) if runtime == "crun" else None
        self.cached(runtime, lambda: self.versions.setdefault(
            runtime, oci.runtime_version(self.ws, runtime)))
        bundle = self.cached(f"bundle-{memory}", lambda: oci.make_bundle(
            self.ws, f"m{memory // MIB}" if memory else "plain", images.busybox_rootfs(self.ws), memory))
        return oci.run_delete(self.ws, runtime, bundle, mount_ns)

    def _crun_mask(self) -> str | None:
        oci.tool("crun")
        mount_ns = oci.crun_mount_ns(self.ws)
        if mount_ns:
            self.notes.append("crun 1.8 refuses a hybrid cgroup host whose cgroup2 tree lists a "
                              "controller (here hugetlb): it runs in a private mount namespace where "
                              "/sys/fs/cgroup/unified/cgroup.controllers reads empty; the launcher joins "
                              "it before its clock starts (no wrapper process is timed). crun 1.8 has "
                              "no `run --keep`: its row is `crun run`, which deletes at exit.")
        return mount_ns

    def podman(self) -> engines.Podman:
        def start() -> engines.Podman:
            podman = engines.Podman(self.ws)
            podman("load", "-i", str(images.busybox_archive(self.ws)))
            self.versions["podman"] = podman.version + ", runtime runc"
            return podman
        return self.cached("podman", start)

    def docker(self) -> engines.Docker:
        def start() -> engines.Docker:
            docker = engines.Docker(self.ws)
            docker("load", "-i", str(images.busybox_archive(self.ws)))
            self.versions["docker"] = docker.version
            return docker
        return self.cached("docker", start)

    # --- the bridge rows: each engine in a private network namespace (netns.py) -------------

    def bridge_mini(self) -> Side:
        self.cached("bridge", self._bridge_probe)
        return self.cached("mini (bridge)", lambda: netns.mini_side(self.ws))

    def bridge_docker(self) -> engines.Docker:
        def start() -> engines.Docker:
            docker = netns.docker(self.ws)
            docker("load", "-i", str(images.busybox_archive(self.ws)))
            docker("run", "--rm", "busybox", "true")  # once, untimed: the bridge works
            self.versions.setdefault("docker", docker.version)
            return docker
        self.cached("bridge", self._bridge_probe)
        return self.cached("docker (bridge)", start)

    def bridge_podman(self) -> engines.Podman:
        def start() -> engines.Podman:
            podman = netns.podman(self.ws)
            podman("load", "-i", str(images.busybox_archive(self.ws)))
            podman("run", "--rm", "--pull=never", f"--cgroup-parent={podman.cgroup}", "busybox", "true")
            self.versions.setdefault("podman", podman.version + ", runtime runc")
            return podman
        self.cached("bridge", self._bridge_probe)
        return self.cached("podman (bridge)", start)

    def _bridge_probe(self) -> None:
        netns.probe()
        self.notes.append("The bridge rows run mini, podman (CNI) and docker each in a private network "
                          "namespace of the harness's (lo only, no route), never in this machine's own; "
                          "the launcher joins it before its clock starts, dockerd runs in it. "
                          "See bench/README.md.")

    def bridge_notes(self) -> None:
        """What an engine tried to modprobe during the bridge rows (refused), once, as a note."""
        tried = netns.modprobe_attempts(self.ws)
        if tried:
            self.notes.append(f"Refused during the bridge rows (the bench loads no kernel module): "
                              f"{'; '.join(sorted(set(tried)))}.")
