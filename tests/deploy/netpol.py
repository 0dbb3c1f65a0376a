"""A small NetworkPolicy evaluator: may pod A open a connection to pod B on port P, given the
rendered policies? Kubernetes' semantics (networking.k8s.io/v1), for pods, not IP blocks:

- A pod is isolated for a direction when some policy in its namespace selects it and lists that
  direction in ``policyTypes`` (absent: Ingress, plus Egress when the policy has ``egress`` rules).
  A pod that is not isolated allows everything in that direction.
- An isolated pod allows a connection when any rule of any policy selecting it matches it: the peer
  matches one of the rule's ``from``/``to`` entries (absent or empty: any peer) and the port one of
  its ``ports`` (absent or empty: any port; a named port is the destination's container port of
  that name; ``endPort`` makes a range).
- A peer with only ``podSelector`` means pods of the policy's own namespace; only
  ``namespaceSelector``, every pod of the matching namespaces; both, pods matching both. ``ipBlock``
  peers match no pod here.
- A connection needs both: the source's egress and the destination's ingress allow it (replies of an
  allowed connection are always allowed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # container port name -> number


def selects(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions; {} selects everything)."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        key, op, values = e["key"], e["operator"], e.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


class Policies:
    def __init__(self, policies: list[Obj], namespaces: dict[str, dict[str, str]]) -> None:
        """``namespaces``: name -> labels (``kubernetes.io/metadata.name`` is added, as the API server does)."""
        self.policies = policies
        self.namespaces = {n: {**labels, "kubernetes.io/metadata.name": n} for n, labels in namespaces.items()}

    @staticmethod
    def types(policy: Obj) -> list[str]:
        spec = policy["spec"]
        return list(spec.get("policyTypes") or ["Ingress", *(["Egress"] if "egress" in spec else [])])

    def _selecting(self, pod: Pod, direction: str) -> list[Obj]:
        return [
            p
            for p in self.policies
            if p["metadata"].get("namespace") == pod.namespace
            and direction in self.types(p)
            and selects(p["spec"]["podSelector"], pod.labels)
        ]

    def _peer(self, peer: Obj, policy_namespace: str, pod: Pod) -> bool:
        if "ipBlock" in peer:
            return False
        if "namespaceSelector" in peer:
            labels = self.namespaces.get(pod.namespace, {"kubernetes.io/metadata.name": pod.namespace})
            if not selects(peer["namespaceSelector"], labels):
                return False
        elif pod.namespace != policy_namespace:
            return False
        return "podSelector" not in peer or selects(peer["podSelector"], pod.labels)

    @staticmethod
    def _port(entries: list[Obj] | None, dst: Pod, port: int, protocol: str) -> bool:
        if not entries:
            return True
        for e in entries:
            if e.get("protocol", "TCP") != protocol:
                continue
            want = e.get("port")
            if want is None:
                return True
            number: int | None = dst.ports.get(want) if isinstance(want, str) else int(want)
            if number is not None and number <= port <= int(e.get("endPort", number)):
                return True
        return False

    def _allows(self, pod: Pod, direction: str, peer: Pod, dst: Pod, port: int, protocol: str) -> bool:
        policies = self._selecting(pod, direction)
        if not policies:
            return True  # not isolated in this direction
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in policies:
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key) or []
                if peers and not any(self._peer(p, policy["metadata"]["namespace"], peer) for p in peers):
                    continue
                if self._port(rule.get("ports"), dst, port, protocol):
                    return True
        return False

    def allowed(self, src: Pod, dst: Pod, port: int, protocol: str = "TCP") -> bool:
        """May ``src`` open a connection to ``dst`` on ``port``?"""
        return self._allows(src, "Egress", dst, dst, port, protocol) and self._allows(
            dst, "Ingress", src, dst, port, protocol
        )


def pods_of(objs: list[Obj]) -> list[Pod]:
    """The pods the rendered objects would create (Deployments, Jobs, KServe predictors), one each."""
    out = []
    for o in objs:
        namespace = o["metadata"].get("namespace", "default")
        if o["kind"] in ("Deployment", "Job"):
            labels, spec = o["spec"]["template"]["metadata"].get("labels", {}), o["spec"]["template"]["spec"]
        elif o["kind"] == "InferenceService":
            labels, spec = o["spec"]["predictor"].get("labels", {}), o["spec"]["predictor"]
        else:
            continue
        ports = {
            p.get("name", str(p["containerPort"])): p["containerPort"]
            for c in spec["containers"]
            for p in c.get("ports", [])
        }
        out.append(Pod(o["metadata"]["name"], namespace, dict(labels), ports))
    return out
