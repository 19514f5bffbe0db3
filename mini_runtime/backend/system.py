"""The local backend's system verbs: `mini version`, `info`, `system df` and `doctor`."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any


class SystemVerbs:
    """SystemVersion, SystemInfo, SystemDataUsage and mini's own check, for LocalBackend (which
    gives them `container_list` and `store`)."""

    def system_version(self) -> dict[str, Any]:
        from mini_runtime import sysinfo
        return sysinfo.version()

    def system_info(self) -> dict[str, Any]:
        from mini_runtime import sysinfo
        return sysinfo.info(self.container_list(all=True), len({image.id for image in self.store.list()}))

    def system_df(self) -> dict[str, Any]:
        from mini_runtime.image import listing
        containers = self.container_list(all=True, size=True)
        users: dict[str, int] = {}
        for summary in containers:
            users[summary["ImageID"]] = users.get(summary["ImageID"], 0) + 1
        layers, images = listing.usage(self.store, users)
        return {"LayersSize": layers, "Images": images, "Containers": containers, "Volumes": [], "BuildCache": []}

    def system_check(self) -> int:
        from mini_runtime import doctor

        return doctor.main()


