"""The restricted Pod Security Standard as checks over a pod spec, plus the chart's own rules.

The checks follow the policy's published controls (Kubernetes "Pod Security Standards", profile
`restricted`, which includes `baseline`). The chart adds: a read-only root filesystem whose only
writable places are emptyDir volumes, and cpu and memory requests and limits on every container.
"""

from __future__ import annotations

from typing import Any

# Baseline: the sysctls any pod may set.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
# Restricted: the only volume types allowed.
ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SECCOMP_ALLOWED = {"RuntimeDefault", "Localhost"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def _containers(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{field}[{c.get('name', i)}]", c)
        for field in ("initContainers", "containers", "ephemeralContainers")
        for i, c in enumerate(spec.get(field) or [])
    ]


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """Every way `spec` (a PodSpec) breaks the restricted profile or the chart's rules."""
    found: list[str] = []
    pod_sc = spec.get("securityContext") or {}

    # --- baseline ---
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(f"{field} is true")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        found.append("pod hostProcess is true")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"unsafe sysctl {sysctl.get('name')}")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            found.append(f"volume {volume['name']} is a hostPath")
        if not kinds <= ALLOWED_VOLUMES:
            found.append(f"volume {volume['name']} has a disallowed type {sorted(kinds)}")
    selinux = pod_sc.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        found.append("pod seLinuxOptions are not allowed")
    if (pod_sc.get("appArmorProfile") or {}).get("type") not in (
        None,
        "RuntimeDefault",
        "Localhost",
    ):
        found.append("pod appArmorProfile is not allowed")

    # --- restricted, pod level ---
    pod_non_root = pod_sc.get("runAsNonRoot") is True
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in SECCOMP_ALLOWED:
        found.append(f"pod seccompProfile {pod_seccomp}")
    if pod_sc.get("runAsUser") == 0:
        found.append("pod runAsUser is 0")

    emptydirs = {v["name"] for v in spec.get("volumes") or [] if "emptyDir" in v}
    for where, c in _containers(spec):
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            found.append(f"{where} is privileged")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            found.append(f"{where} hostProcess is true")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                found.append(f"{where} uses hostPort {port['hostPort']}")
        if sc.get("procMount") not in (None, "Default"):
            found.append(f"{where} procMount {sc['procMount']}")
        c_selinux = sc.get("seLinuxOptions") or {}
        if (
            c_selinux.get("type", "") not in SELINUX_TYPES
            or c_selinux.get("user")
            or c_selinux.get("role")
        ):
            found.append(f"{where} seLinuxOptions are not allowed")
        if (sc.get("appArmorProfile") or {}).get("type") not in (
            None,
            "RuntimeDefault",
            "Localhost",
        ):
            found.append(f"{where} appArmorProfile is not allowed")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where} allowPrivilegeEscalation is not false")
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and not pod_non_root):
            found.append(f"{where} may run as root (runAsNonRoot)")
        if sc.get("runAsUser") == 0:
            found.append(f"{where} runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp is not None and seccomp not in SECCOMP_ALLOWED:
            found.append(f"{where} seccompProfile {seccomp}")
        if seccomp is None and pod_seccomp is None:
            found.append(f"{where} has no seccompProfile")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"{where} does not drop ALL capabilities")
        added = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            found.append(f"{where} adds capabilities {sorted(added)}")

        # --- the chart's own rules ---
        if sc.get("readOnlyRootFilesystem") is not True:
            found.append(f"{where} root filesystem is writable")
        for mount in c.get("volumeMounts") or []:
            if not mount.get("readOnly") and mount["name"] not in emptydirs:
                found.append(f"{where} writes to {mount['mountPath']}, which is not an emptyDir")
        resources = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(kind) or {}):
                    found.append(f"{where} has no {resource} {kind[:-1]}")
    return found
