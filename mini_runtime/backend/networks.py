"""The local backend's network verbs (chapter 07): `mini network ...` on this machine."""

from __future__ import annotations

from mini_runtime.errors import Conflict, NotFound

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any


class NetworkVerbs:
    """NetworkCreate, List, Inspect, Delete, Prune, Connect and Disconnect, for LocalBackend."""

    def network_create(self, name: str, subnet: str | None = None, gateway: str | None = None,
                       ip_range: str | None = None, labels: dict[str, str] | None = None) -> dict:
        from mini_runtime.network import networks
        return {"Id": networks.create(name, subnet, gateway, ip_range, labels)["Id"], "Warning": ""}

    def network_list(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        from mini_runtime import views
        return views.networks(filters)

    def network_inspect(self, name: str) -> dict[str, Any]:
        from mini_runtime.network import networks
        return networks.inspect(name)

    def network_delete(self, name: str) -> str:
        from mini_runtime.network import networks
        return networks.remove(name)

    def network_prune(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        from mini_runtime import filters as flt
        from mini_runtime import network
        from mini_runtime.network import networks
        from mini_runtime.units import rfc3339_ns
        flt.check(filters or {}, ("label", "label!", "until"))
        may_go = flt.prune_filter(filters or {})
        deleted = []
        for record in networks.user_records():
            if not record["Containers"] and may_go(record.get("Labels"), rfc3339_ns(record["Created"]) or 0):
                try:
                    deleted.append(networks.remove(record["Id"]))
                except (Conflict, NotFound):     # a container joined it, or it went, meanwhile
                    pass
        network.prune_default_bridge()
        return {"NetworksDeleted": deleted}

    def network_connect(self, network: str, container_ref: str, aliases: Iterable[str] = (),
                        ip: str | None = None) -> None:
        from mini_runtime import container, endpoints
        endpoints.connect_network(container.find(container_ref), network, list(aliases), ip)

    def network_disconnect(self, network: str, container_ref: str, force: bool = False) -> None:
        from mini_runtime import container, endpoints
        endpoints.disconnect_network(container.find(container_ref), network)
