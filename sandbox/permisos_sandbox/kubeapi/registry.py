"""Which resource types are served, by group, version and plural."""

from __future__ import annotations

from .resources import ResourceType, builtin_types


class Registry:
    def __init__(self) -> None:
        self._types: dict[str, ResourceType] = {}
        for rt in builtin_types():
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        self._types[rt.key] = rt

    def remove(self, key: str) -> None:
        self._types.pop(key, None)

    def by_key(self, key: str) -> ResourceType | None:
        return self._types.get(key)

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        rt = self._types.get(f"{plural}.{group}" if group else plural)
        if rt is None or version not in rt.versions:
            return None
        return rt

    def types(self) -> list[ResourceType]:
        return list(self._types.values())

    def groups(self) -> dict[str, list[str]]:
        """Group -> served versions, preferred first, in the order kube lists them."""
        result: dict[str, list[str]] = {}
        for rt in self._types.values():
            versions = result.setdefault(rt.group, [])
            for v in rt.versions:
                if v not in versions:
                    versions.append(v)
        return result

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._types.values() if rt.group == group and version in rt.versions]
