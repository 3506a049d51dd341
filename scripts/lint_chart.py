#!/usr/bin/env python3
"""Lints and renders the Helm chart (charts/medgate) with Helm's own Go library, per profile.

helm-sdkpy packages Helm (v4) as a shared library. For every values profile the chart ships
(the default values.yaml, each values-*.yaml next to it, each ci/*-values.yaml):

1. lint: `Lint` on a copy of the chart whose values.yaml is the profile merged over the
   defaults (the library lints a chart path, it takes no values). Any message of severity
   warning or error fails the profile, as does any lint error.
2. render: helm-sdkpy has no template or dry-run action, so the profile is installed for real
   against a stand-in Kubernetes API on 127.0.0.1 that answers discovery, finds no objects,
   and refuses the release record Helm writes first, after keeping it: that record holds the
   manifest, the hooks and the notes exactly as Helm rendered them (values schema checked,
   `lookup` answered by the stand-in). Render errors come back with Helm's message.
3. checks on the rendered objects: non-root read-only containers, probes, the migration hook,
   the HPA's target, Services and budgets that select their pods, secret references, ...

Then values that the schema must refuse are installed the same way and must fail.

Exit status 0 when every profile passes, 1 otherwise. `--chart DIR` lints another chart path
(used to prove that a broken template fails).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import gzip
import json
import shutil
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

import helm_sdkpy as helm

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "medgate"
RELEASE = "medgate"
NAMESPACE = "medgate"

# Helm's lint severities (pkg/lint/support): 1 info, 2 warning, 3 error.
WARNING = 2
ERROR = 3


# ---------------------------------------------------------------------------------------------
# Profiles and values


def profiles(chart: Path) -> list[tuple[str, dict]]:
    """(name, user values) for the default profile and every profile file of the chart."""
    found = [("default", {})]
    files = sorted(chart.glob("values-*.yaml")) + sorted((chart / "ci").glob("*-values.yaml"))
    for path in files:
        name = path.relative_to(chart).as_posix()
        found.append((name, yaml.safe_load(path.read_text()) or {}))
    return found


def coalesce(defaults: dict, overrides: dict) -> dict:
    """Helm's merge of user values over the chart's: maps merge, null removes a key."""
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = coalesce(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# ---------------------------------------------------------------------------------------------
# Lint


def lint(chart: Path, values: dict) -> list[str]:
    """Helm lint of `chart` with `values` as its values.yaml; the problems found."""
    with tempfile.TemporaryDirectory(prefix="medgate-chart-") as tmp:
        copy_dir = Path(tmp) / chart.name
        shutil.copytree(chart, copy_dir)
        (copy_dir / "values.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
        config = helm.Configuration(namespace=NAMESPACE, kubeconfig=KUBECONFIG_UNREACHABLE)
        result = asyncio.run(helm.Lint(config).run(str(copy_dir)))
    problems = []
    for message in result.get("Messages") or []:
        severity = message.get("Severity", 0)
        if severity >= WARNING:
            # The library serialises the Go error as {}: the path and severity are what is left;
            # the render step below prints Helm's message for template errors.
            kind = "error" if severity >= ERROR else "warning"
            problems.append(f"lint {kind} (severity {severity}) in {message.get('Path')}")
    for error in result.get("Errors") or []:
        problems.append(f"lint error: {error or '(no message from the library)'}")
    return problems


# ---------------------------------------------------------------------------------------------
# Render through a stand-in Kubernetes API

KUBECONFIG_UNREACHABLE = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""

# group -> (version, [(plural, kind, namespaced)]): every kind the chart can render.
API_GROUPS = {
    "": (
        "v1",
        [
            ("configmaps", "ConfigMap", True),
            ("secrets", "Secret", True),
            ("services", "Service", True),
            ("serviceaccounts", "ServiceAccount", True),
            ("persistentvolumeclaims", "PersistentVolumeClaim", True),
            ("pods", "Pod", True),
            ("namespaces", "Namespace", False),
        ],
    ),
    "apps": ("v1", [("deployments", "Deployment", True)]),
    "batch": ("v1", [("jobs", "Job", True)]),
    "autoscaling": ("v2", [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)]),
    "policy": ("v1", [("poddisruptionbudgets", "PodDisruptionBudget", True)]),
    "networking.k8s.io": (
        "v1",
        [("ingresses", "Ingress", True), ("networkpolicies", "NetworkPolicy", True)],
    ),
    "monitoring.coreos.com": ("v1", [("servicemonitors", "ServiceMonitor", True)]),
}
CAPTURED = "release record captured"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _fields(buf: bytes):
    """(field number, value) of a protobuf message, without a schema."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i : i + length], i + length
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"protobuf wire type {wire}")
        yield number, value


def secret_data(body: bytes, content_type: str) -> dict[str, bytes]:
    """The data of a Secret that client-go sent (protobuf for core types, or JSON)."""
    if "json" in content_type:
        data = json.loads(body).get("data") or {}
        return {k: base64.b64decode(v) for k, v in data.items()}
    if body[:4] != b"k8s\x00":
        raise ValueError("not a Kubernetes protobuf envelope")
    raw = dict(_fields(body[4:]))[2]  # runtime.Unknown.raw
    data = {}
    for number, value in _fields(raw):
        if number == 2:  # Secret.data: map<string, bytes>
            entry = dict(_fields(value))
            data[entry[1].decode()] = entry.get(2, b"")
    return data


class StandInApi:
    """A Kubernetes API that knows the chart's kinds, holds no objects, and keeps the release
    record Helm tries to store (refusing it, so nothing else happens)."""

    def __init__(self) -> None:
        self.release: dict | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, obj: dict) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _status(self, code: int, reason: str, message: str = "") -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": reason, "message": message, "code": code})

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                if path == "/version":
                    return self._send(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0",
                                            "platform": "linux/amd64"})
                if path == "/api":
                    return self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
                if path == "/apis":
                    groups = [
                        {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                         "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}}
                        for g, (v, _) in API_GROUPS.items() if g
                    ]
                    return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                            "groups": groups})
                for group, (version, resources) in API_GROUPS.items():
                    gv = f"{group}/{version}" if group else version
                    if path == (f"/apis/{gv}" if group else "/api/v1"):
                        return self._send(200, {
                            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                            "resources": [
                                {"name": plural, "singularName": kind.lower(), "kind": kind,
                                 "namespaced": namespaced,
                                 "verbs": ["create", "delete", "get", "list", "patch",
                                           "update", "watch"]}
                                for plural, kind, namespaced in resources
                            ],
                        })
                if self.command == "GET" and path.endswith("/secrets") and "labelSelector" in query:
                    # Helm's release history: no earlier release.
                    return self._send(200, {"kind": "SecretList", "apiVersion": "v1",
                                            "metadata": {}, "items": []})
                if self.command == "POST" and path.endswith("/secrets"):
                    data = secret_data(body, self.headers.get("content-type") or "")
                    if "release" in data:
                        encoded = base64.b64decode(data["release"])
                        api.release = json.loads(gzip.decompress(encoded))
                        return self._status(403, "Forbidden", CAPTURED)
                return self._status(404, "NotFound")

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        port = self.server.server_address[1]
        self.kubeconfig = f"""apiVersion: v1
kind: Config
clusters: [{{name: stand-in, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: stand-in, user: {{token: stand-in}}}}]
contexts:
  - {{name: stand-in, context: {{cluster: stand-in, user: stand-in, namespace: {NAMESPACE}}}}}
current-context: stand-in
"""


_API: StandInApi | None = None


def render(chart: Path, values: dict) -> tuple[dict | None, str]:
    """Helm's rendering of `chart` with user `values`: (release record, error message)."""
    global _API
    if _API is None:
        _API = StandInApi()
    api = _API
    api.release = None
    config = helm.Configuration(namespace=NAMESPACE, kubeconfig=api.kubeconfig)
    try:
        asyncio.run(helm.Install(config).run(RELEASE, str(chart), values=values or None,
                                             wait=False, timeout=30))
        return None, "install succeeded against the stand-in API (the record was not seen)"
    except helm.HelmError as e:
        if api.release is not None and CAPTURED in str(e):
            return api.release, ""
        return None, str(e)


def documents(release: dict) -> tuple[list[dict], list[dict]]:
    """(objects, hook objects) of a release record."""
    objects = [d for d in yaml.safe_load_all(release.get("manifest") or "") if d]
    hooks = []
    for hook in release.get("hooks") or []:
        hooks.extend(d for d in yaml.safe_load_all(hook.get("manifest") or "") if d)
    return objects, hooks


# ---------------------------------------------------------------------------------------------
# Checks on what Helm rendered


class Checks:
    def __init__(self, objects: list[dict], hooks: list[dict], values: dict, notes: str):
        self.objects, self.hooks, self.values, self.notes = objects, hooks, values, notes
        self.problems: list[str] = []

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            self.problems.append(message)

    def find(self, kind: str, name: str | None = None, hooks: bool = False) -> list[dict]:
        pool = self.hooks if hooks else self.objects
        return [o for o in pool if o.get("kind") == kind
                and (name is None or o["metadata"]["name"] == name)]

    def one(self, kind: str, name: str, hooks: bool = False) -> dict | None:
        found = self.find(kind, name, hooks)
        self.expect(len(found) == 1, f"expected one {kind} {name}, found {len(found)}")
        return found[0] if len(found) == 1 else None

    def run(self) -> list[str]:
        v = self.values
        full = RELEASE  # the release name contains the chart name: no doubling
        cp_name, px_name = f"{full}-control-plane", f"{full}-proxy"
        secret_name = v["secrets"]["existingSecret"] or full
        keys = v["secrets"]["keys"]

        for obj in self.objects + self.hooks:
            meta = obj.get("metadata") or {}
            self.expect(len(meta.get("name", "")) <= 63, f"{obj['kind']} name too long")
            self.expect(meta.get("namespace") == NAMESPACE,
                        f"{obj['kind']} {meta.get('name')} not in the release namespace")

        cp = self.one("Deployment", cp_name)
        px = self.one("Deployment", px_name)
        workloads = [w for w in (cp, px) if w] + self.find("Job", hooks=True)
        self.expect(not self.find("Job"), "a Job outside the hooks")
        for w in workloads:
            self.pod_security(w)

        cm = self.one("ConfigMap", full)
        if cm:
            settings = yaml.safe_load(cm["data"]["medgate.yaml"])
            self.expect(isinstance(settings, dict), "medgate.yaml is not a mapping")
            for forbidden in ("database_url", "redis_url", "data_dir"):
                self.expect(forbidden not in (settings or {}),
                            f"medgate.yaml sets {forbidden}, which the chart owns")

        secret = None
        if v["secrets"]["existingSecret"]:
            self.expect(not self.find("Secret", full),
                        "a chart Secret rendered although existingSecret is set")
        else:
            secret = self.one("Secret", full)
            if secret:
                data = secret.get("data") or {}
                for key in (keys["jwtSecret"], keys["hmacSecret"]):
                    value = base64.b64decode(data.get(key, "")).decode()
                    self.expect(len(value) >= 32, f"Secret key {key} shorter than 32 characters")

        if cp:
            self.control_plane(cp, secret_name, keys)
        if px:
            self.proxy(px, cp_name, secret_name, keys)

        for w in (cp, px):
            if w:
                self.secret_refs(w, secret, secret_name)
        for svc_name, deploy in ((cp_name, cp), (px_name, px)):
            svc = self.one("Service", svc_name)
            if svc and deploy:
                self.selects(svc["spec"]["selector"], deploy, f"Service {svc_name}")
                ports = {p["name"] for c in containers(deploy) for p in c.get("ports", [])}
                for port in svc["spec"]["ports"]:
                    self.expect(port["targetPort"] in ports,
                                f"Service {svc_name} targets port {port['targetPort']} that "
                                "no container names")
        for pdb in self.find("PodDisruptionBudget"):
            target = cp if pdb["metadata"]["name"] == cp_name else px
            if target:
                self.selects(pdb["spec"]["selector"]["matchLabels"], target,
                             f"PodDisruptionBudget {pdb['metadata']['name']}")

        self.autoscaling(px, px_name)
        self.migrations(secret_name, keys)
        self.storage(cp)
        self.optional(px_name)
        self.expect("medgate token issue" in self.notes
                    and "--role platform_admin" in self.notes,
                    "NOTES.txt does not tell how to get an admin token")
        self.expect(f"deploy/{cp_name}" in self.notes,
                    "NOTES.txt does not name the control-plane Deployment")
        return self.problems

    def pod_security(self, workload: dict) -> None:
        name = f"{workload['kind']} {workload['metadata']['name']}"
        pod = workload["spec"]["template"]["spec"]
        psc = pod.get("securityContext") or {}
        self.expect(psc.get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot is not true")
        self.expect((psc.get("runAsUser") or 0) > 0, f"{name}: pod runs as uid 0")
        self.expect(pod.get("automountServiceAccountToken") is False,
                    f"{name}: mounts a service account token")
        for c in pod["containers"] + pod.get("initContainers", []):
            csc = c.get("securityContext") or {}
            where = f"{name} container {c['name']}"
            self.expect(csc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot is not true")
            self.expect(csc.get("readOnlyRootFilesystem") is True,
                        f"{where}: root filesystem is not read-only")
            self.expect(csc.get("allowPrivilegeEscalation") is False,
                        f"{where}: privilege escalation allowed")
            self.expect("ALL" in ((csc.get("capabilities") or {}).get("drop") or []),
                        f"{where}: capabilities not dropped")
            self.expect(bool((c.get("resources") or {}).get("requests")),
                        f"{where}: no resource requests")
            env = env_map(c)
            data_dir = env.get("MEDGATE_DATA_DIR", {}).get("value")
            self.expect(data_dir is not None, f"{where}: MEDGATE_DATA_DIR not set")
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            self.expect(data_dir in mounts and not mounts[data_dir].get("readOnly"),
                        f"{where}: the data dir {data_dir} is not a writable volume")
            self.expect("/tmp" in mounts, f"{where}: no writable /tmp")

    def control_plane(self, cp: dict, secret_name: str, keys: dict) -> None:
        v = self.values
        c = containers(cp)[0]
        self.expect(c["args"][0] == "control-plane", "control plane does not run control-plane")
        self.expect(probe_path(c, "livenessProbe") == "/api/health/live",
                    "control plane liveness is not GET /api/health/live")
        self.expect(probe_path(c, "readinessProbe") == "/api/health/ready",
                    "control plane readiness is not GET /api/health/ready")
        env = env_map(c)
        self.expect(env.get("MEDGATE_API_LISTEN", {}).get("value")
                    == f"{v['listenHost']}:{v['controlPlane']['port']}",
                    "MEDGATE_API_LISTEN does not match controlPlane.port")
        for name in ("MEDGATE_JWT_SECRET", "MEDGATE_HMAC_SECRET"):
            self.expect(name in env, f"control plane lacks {name}")
        postgres = v["database"]["type"] == "postgres"
        self.expect(("MEDGATE_DATABASE_URL" in env) == postgres,
                    "MEDGATE_DATABASE_URL present iff database.type is postgres")
        self.expect(("MEDGATE_REDIS_URL" in env) == v["redis"]["enabled"],
                    "control plane MEDGATE_REDIS_URL present iff redis.enabled")
        replicas = cp["spec"].get("replicas")
        self.expect(replicas == v["controlPlane"]["replicas"], "control-plane replicas")
        strategy = cp["spec"]["strategy"]["type"]
        self.expect(strategy == ("RollingUpdate" if postgres else "Recreate"),
                    f"control-plane strategy {strategy} for database {v['database']['type']}")

    def proxy(self, px: dict, cp_name: str, secret_name: str, keys: dict) -> None:
        v = self.values
        c = containers(px)[0]
        self.expect(c["args"][0] == "proxy", "proxy does not run proxy")
        self.expect(probe_path(c, "livenessProbe") == "/healthz", "proxy liveness is not /healthz")
        self.expect(probe_path(c, "readinessProbe") == "/readyz", "proxy readiness is not /readyz")
        env = env_map(c)
        self.expect(env.get("MEDGATE_CONTROL_PLANE_URL", {}).get("value")
                    == f"http://{cp_name}:{v['controlPlane']['service']['port']}",
                    "MEDGATE_CONTROL_PLANE_URL does not name the control-plane Service")
        self.expect(env.get("MEDGATE_PROXY_LISTEN", {}).get("value")
                    == f"{v['listenHost']}:{v['proxy']['port']}",
                    "MEDGATE_PROXY_LISTEN does not match proxy.port")
        if v["proxy"]["useNodeToken"]:
            self.expect("MEDGATE_NODE_TOKEN" in env and "MEDGATE_JWT_SECRET" not in env,
                        "proxy.useNodeToken: the proxy must get the node token, not the secret")
        else:
            self.expect("MEDGATE_JWT_SECRET" in env, "proxy cannot mint its node token")
        self.expect("MEDGATE_DATABASE_URL" not in env and "MEDGATE_HMAC_SECRET" not in env,
                    "the proxy gets database or HMAC secrets it does not use")
        tls = v["proxy"]["tls"]
        mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
        if tls["enabled"]:
            self.expect(env.get("MEDGATE_PROXY_TLS_LISTEN", {}).get("value")
                        == f"{v['listenHost']}:{tls['port']}", "MEDGATE_PROXY_TLS_LISTEN")
            for name in ("MEDGATE_PROXY_TLS_CERT_FILE", "MEDGATE_PROXY_TLS_KEY_FILE"):
                path = env.get(name, {}).get("value", "")
                self.expect(path.startswith(mounts.get("tls", {}).get("mountPath", "?") + "/"),
                            f"{name} is not in the mounted TLS Secret")
            self.expect(mounts.get("tls", {}).get("readOnly") is True,
                        "the TLS Secret is not mounted read-only")
            vols = {vol["name"]: vol for vol in px["spec"]["template"]["spec"]["volumes"]}
            self.expect(vols.get("tls", {}).get("secret", {}).get("secretName")
                        == tls["secretName"], "the TLS volume is not proxy.tls.secretName")
        else:
            self.expect(not any(k.startswith("MEDGATE_PROXY_TLS_") for k in env),
                        "TLS variables without proxy.tls.enabled")

    def secret_refs(self, workload: dict, secret: dict | None, secret_name: str) -> None:
        for c in containers(workload):
            for name, entry in env_map(c).items():
                ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
                if not ref or not name.startswith("MEDGATE_"):
                    continue
                self.expect(ref["name"] == secret_name,
                            f"{name} reads Secret {ref['name']}, not {secret_name}")
                if secret is not None:
                    self.expect(ref["key"] in (secret.get("data") or {}),
                                f"{name} reads key {ref['key']} that the chart Secret lacks")

    def selects(self, selector: dict, workload: dict, what: str) -> None:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        self.expect(all(labels.get(k) == val for k, val in selector.items()),
                    f"{what} does not select the pods of {workload['metadata']['name']}")
        self.expect(selector == workload["spec"]["selector"]["matchLabels"],
                    f"{what} selector differs from {workload['metadata']['name']}'s")

    def autoscaling(self, px: dict | None, px_name: str) -> None:
        hpas = self.find("HorizontalPodAutoscaler")
        if self.values["proxy"]["autoscaling"]["enabled"]:
            self.expect(len(hpas) == 1, "autoscaling enabled but no HPA")
            for hpa in hpas:
                target = hpa["spec"]["scaleTargetRef"]
                self.expect((target["apiVersion"], target["kind"], target["name"])
                            == ("apps/v1", "Deployment", px_name),
                            f"the HPA targets {target}, not the proxy Deployment")
                self.expect(bool(hpa["spec"].get("metrics")), "the HPA has no metric")
            if px:
                self.expect("replicas" not in px["spec"],
                            "the proxy Deployment sets replicas although the HPA owns them")
        else:
            self.expect(not hpas, "an HPA although autoscaling is disabled")

    def migrations(self, secret_name: str, keys: dict) -> None:
        v = self.values
        jobs = self.find("Job", hooks=True)
        wanted = v["migrations"]["enabled"] and v["database"]["type"] == "postgres"
        self.expect(len(jobs) == (1 if wanted else 0),
                    f"{len(jobs)} migration Job(s); expected {1 if wanted else 0}")
        for job in jobs:
            annotations = job["metadata"].get("annotations") or {}
            events = set(annotations.get("helm.sh/hook", "").split(","))
            self.expect({"pre-install", "pre-upgrade"} <= events,
                        f"migration Job hook events {events}")
            c = containers(job)[0]
            self.expect(c["args"] == ["migrate"], "the migration Job does not run migrate")
            self.expect(job["spec"]["template"]["spec"]["restartPolicy"] == "Never",
                        "the migration Job restarts in place")
            ref = env_map(c).get("MEDGATE_DATABASE_URL", {}).get("valueFrom", {}) \
                .get("secretKeyRef", {})
            if v["secrets"]["existingSecret"]:
                self.expect(ref.get("name") == secret_name,
                            "the migration Job does not read the existing Secret")
            else:
                # The chart's Secret does not exist yet when pre-install hooks run.
                hook_secrets = self.find("Secret", ref.get("name"), hooks=True)
                self.expect(len(hook_secrets) == 1,
                            "the migration Job reads a Secret that is not a hook before it")
                for s in hook_secrets:
                    weight = int(s["metadata"]["annotations"].get("helm.sh/hook-weight", 0))
                    job_weight = int(annotations.get("helm.sh/hook-weight", 0))
                    self.expect(weight < job_weight, "the hook Secret is created after the Job")
                    self.expect(ref.get("key") in (s.get("data") or {}),
                                "the hook Secret lacks the database URL")
            sa = job["spec"]["template"]["spec"].get("serviceAccountName")
            if v["serviceAccount"]["create"]:
                self.expect(sa == "default",
                            "the migration Job uses the chart's ServiceAccount, which does not "
                            "exist yet during pre-install")

    def storage(self, cp: dict | None) -> None:
        v = self.values
        pvcs = self.find("PersistentVolumeClaim")
        sqlite = v["database"]["type"] == "sqlite"
        persistence = v["database"]["sqlite"]["persistence"]
        self.expect(len(pvcs) == (1 if sqlite and not persistence["existingClaim"] else 0),
                    "PVC for SQLite only, unless an existing claim is named")
        if cp and sqlite:
            vols = {vol["name"]: vol for vol in cp["spec"]["template"]["spec"]["volumes"]}
            claim = vols.get("data", {}).get("persistentVolumeClaim", {}).get("claimName")
            expected = persistence["existingClaim"] or (
                pvcs[0]["metadata"]["name"] if pvcs else None)
            self.expect(claim is not None and claim == expected,
                        "the control plane's data volume is not the SQLite claim")

    def optional(self, px_name: str) -> None:
        v = self.values
        ingresses = self.find("Ingress")
        self.expect(len(ingresses) == (1 if v["ingress"]["enabled"] else 0), "Ingress count")
        for ing in ingresses:
            for rule in ing["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    self.expect(path["backend"]["service"]["name"] == px_name,
                                "the Ingress does not route to the proxy Service")
        monitors = self.find("ServiceMonitor")
        self.expect(len(monitors) == (1 if v["serviceMonitor"]["enabled"] else 0),
                    "ServiceMonitor count")
        for sm in monitors:
            self.expect(all(e.get("path") == "/metrics" for e in sm["spec"]["endpoints"]),
                        "ServiceMonitor does not scrape /metrics")
        policies = self.find("NetworkPolicy")
        self.expect(len(policies) == (2 if v["networkPolicy"]["enabled"] else 0),
                    "NetworkPolicy count")


def containers(workload: dict) -> list[dict]:
    return workload["spec"]["template"]["spec"]["containers"]


def env_map(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env") or []}


def probe_path(container: dict, probe: str) -> str | None:
    return ((container.get(probe) or {}).get("httpGet") or {}).get("path")


# ---------------------------------------------------------------------------------------------
# Values the schema must refuse

REFUSED = [
    # (what, values, where the schema must complain)
    ("sqlite with two control-plane replicas", {"controlPlane": {"replicas": 2}},
     "/controlPlane/replicas"),
    ("postgres without a database URL", {"database": {"type": "postgres"}},
     "/secrets/databaseUrl"),
    ("a database URL that is not PostgreSQL",
     {"database": {"type": "postgres"}, "secrets": {"databaseUrl": "mysql://db/medgate"}},
     "/secrets/databaseUrl"),
    ("redis without a URL", {"redis": {"enabled": True}}, "/secrets/redisUrl"),
    ("a JWT secret shorter than 32 characters", {"secrets": {"jwtSecret": "short"}},
     "/secrets/jwtSecret"),
    ("an unknown database type", {"database": {"type": "mysql"}}, "/database/type"),
    ("a typo in a top-level key", {"proxyy": {}}, "'proxyy' not allowed"),
    ("a settings key medgate does not know", {"settings": {"proxy": {"thread": 4}}},
     "'thread' not allowed"),
    ("the listen address in the settings file",
     {"settings": {"proxy": {"listen": "0.0.0.0:1"}}}, "'listen' not allowed"),
    ("a secret in the settings file", {"settings": {"auth": {"jwt_secret": "x" * 40}}},
     "'jwt_secret' not allowed"),
    ("a writable root filesystem", {"securityContext": {"readOnlyRootFilesystem": False}},
     "/securityContext/readOnlyRootFilesystem"),
    ("running as root allowed", {"podSecurityContext": {"runAsNonRoot": False}},
     "/podSecurityContext/runAsNonRoot"),
    ("TLS without its Secret", {"proxy": {"tls": {"enabled": True}}}, "/proxy/tls/secretName"),
    ("proxy threads out of range", {"settings": {"proxy": {"threads": 0}}},
     "/settings/proxy/threads"),
    ("a replica count given as a string", {"proxy": {"replicas": "2"}}, "/proxy/replicas"),
]


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chart", type=Path, default=CHART, help="chart directory")
    args = parser.parse_args()
    chart = args.chart.resolve()
    defaults = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    print(f"helm library: {helm.get_version()} (helm-sdkpy {helm.__version__})")

    failed = 0
    for name, user_values in profiles(chart):
        merged = coalesce(defaults, user_values)
        problems = lint(chart, merged)
        release, error = render(chart, user_values)
        if release is None:
            problems.append(f"render failed: {error}")
        else:
            objects, hooks = documents(release)
            notes = (release.get("info") or {}).get("notes") or ""
            problems += Checks(objects, hooks, merged, notes).run()
            kinds = sorted({o["kind"] for o in objects})
            print(f"  {name}: {len(objects)} objects ({', '.join(kinds)}), "
                  f"{len(hooks)} hook objects")
        if problems:
            failed += 1
            print(f"FAIL {name}")
            for problem in problems:
                print(f"    - {problem}")
        else:
            print(f"ok   {name}: lint clean, render checks passed")

    for what, values, where in REFUSED:
        release, error = render(chart, values)
        if release is not None:
            failed += 1
            print(f"FAIL refused values: {what}: Helm rendered them")
        elif "schema" not in error or where not in error:
            failed += 1
            print(f"FAIL refused values: {what}: not refused by the schema at {where}: {error}")
        else:
            detail = [line.strip("- ") for line in error.splitlines() if where in line]
            print(f"ok   refused values: {what}: {detail[0]}")

    total = len(profiles(chart)) + len(REFUSED)
    print(f"chart: {total - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
