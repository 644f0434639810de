#!/usr/bin/env python3
"""Checks deploy/kubernetes/ (issue 25, docs/cluster.md) without a cluster.

1. `kubectl apply --dry-run=client --validate=false` over deploy/kubernetes/ and its examples/: kubectl
   parses every document and maps its apiVersion/kind to a resource. Even a client-side dry run asks an API
   server for that mapping (discovery), so this script serves the discovery documents of the resources the
   manifests may use (Kubernetes 1.2x core/v1, apps/v1, batch/v1) from a stub on loopback. Schema
   validation (--validate=true) needs the server's OpenAPI document and is not done; step 2 checks what
   matters to isoflop instead.
2. The manifests agree with each other and with isoflop's flags: one coordinator replica; the Service's
   target ports are container ports; the worker dials the Service's gRPC port; each worker's --gpus equals
   its nvidia.com/gpu limit; every secretKeyRef names the Secret's keys; volumes name existing claims.
3. The check can fail: a manifest with a misspelt kind is refused by the same kubectl call.

   With BIN_DIR, every --flag the manifests pass to isoflop-coordinator or isoflop-worker is one that
   binary's --help lists.

Usage: validate_kubernetes.py REPO_ROOT [BIN_DIR]  (exit 0: all good; 1: a failure, printed)
"""
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

import yaml

CORE = ["namespaces", "services", "secrets", "configmaps", "persistentvolumeclaims", "serviceaccounts"]
KINDS = {
    "namespaces": "Namespace", "services": "Service", "secrets": "Secret", "configmaps": "ConfigMap",
    "persistentvolumeclaims": "PersistentVolumeClaim", "serviceaccounts": "ServiceAccount",
    "statefulsets": "StatefulSet", "daemonsets": "DaemonSet", "deployments": "Deployment", "jobs": "Job",
}
GROUPS = {"apps": ["statefulsets", "daemonsets", "deployments"], "batch": ["jobs"]}


def resource_list(group_version, names):
    return {
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
        "resources": [{
            "name": n, "singularName": KINDS[n].lower(), "namespaced": n != "namespaces", "kind": KINDS[n],
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        } for n in names],
    }


DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}} for g in GROUPS]},
    "/api/v1": resource_list("v1", CORE),
    "/version": {"major": "1", "minor": "29", "gitVersion": "v1.29.0-isoflop-stub"},
}
for g, names in GROUPS.items():
    DISCOVERY[f"/apis/{g}/v1"] = resource_list(f"{g}/v1", names)


class Stub(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = DISCOVERY.get(self.path.split("?")[0])
        if body is None:
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"kind":"Status","status":"Failure","code":404}')
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
    print(("ok   " if ok else "FAIL ") + what)


def kubectl(kubeconfig, paths):
    cmd = ["kubectl", "--kubeconfig", kubeconfig, "apply", "--dry-run=client", "--validate=false", "-o", "name"]
    for p in paths:
        cmd += ["-f", p]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "HOME": os.path.dirname(kubeconfig)})
    return r.returncode, r.stdout, r.stderr


def flag(args, name):
    return args[args.index(name) + 1] if name in args else None


def main():
    root = sys.argv[1]
    kdir = os.path.join(root, "deploy", "kubernetes")
    examples = os.path.join(kdir, "examples")
    if shutil.which("kubectl") is None:
        print("FAIL kubectl not on PATH: scripts/setup.sh installs Debian's kubernetes-client")
        return 1

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tmp = tempfile.mkdtemp(prefix="isoflop-kubectl-")
    kubeconfig = os.path.join(tmp, "config")
    with open(kubeconfig, "w") as f:
        yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "stub",
            "clusters": [{"name": "stub", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
            "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub"}}],
            "users": [{"name": "stub", "user": {}}],
        }, f)

    # 1. kubectl parses and maps every object.
    docs = []
    for d in (kdir, examples):
        for name in sorted(os.listdir(d)):
            if name.endswith((".yaml", ".yml")):
                with open(os.path.join(d, name)) as f:
                    docs += [x for x in yaml.safe_load_all(f) if x]
    code, out, err = kubectl(kubeconfig, [kdir, examples])
    check(code == 0, f"kubectl apply --dry-run=client -f deploy/kubernetes/ -f deploy/kubernetes/examples/ "
                     f"(exit {code}){': ' + err.strip() if code else ''}")
    applied = set(out.split())
    for d in docs:
        # -o name: "statefulset.apps/isoflop-coordinator", "service/isoflop-coordinator", ...
        group = d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else ""
        want = f"{d['kind'].lower()}{'.' + group if group else ''}/{d['metadata']['name']}"
        check(want in applied, f"kubectl took {want}")

    # 2. The manifests agree with each other and with isoflop's flags.
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    secret = by_kind["Secret"][0]
    claims = {c["metadata"]["name"] for c in by_kind.get("PersistentVolumeClaim", [])}
    (sts,) = by_kind["StatefulSet"]
    (svc,) = by_kind["Service"]
    check(sts["spec"]["replicas"] == 1, "the coordinator StatefulSet has exactly 1 replica (one process per --db)")
    check(bool(sts["spec"].get("volumeClaimTemplates")), "the coordinator's database is on a volume")
    coord = sts["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in coord["ports"]}
    listen = flag(coord["args"], "--listen")
    check(listen is not None and int(listen.rsplit(":", 1)[1]) == ports.get("grpc"),
          f"coordinator --listen {listen} is its grpc containerPort")
    check(flag(coord["args"], "--db", ).startswith(coord["volumeMounts"][0]["mountPath"] + "/"),
          "coordinator --db is on its volume")
    for p in svc["spec"]["ports"]:
        check(p["targetPort"] in ports, f"Service port {p['name']} targets a container port")
    grpc_port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "grpc")
    want_address = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc:{grpc_port}"
    pods = [(d["kind"], d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs
            if d["kind"] in ("StatefulSet", "DaemonSet", "Job", "Deployment")]
    for kind, name, spec in pods:
        for c in spec["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    check(ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"],
                          f"{kind} {name}: env {e['name']} names a key of Secret {secret['metadata']['name']}")
            if c["command"] == ["isoflop-worker"]:
                check(flag(c["args"], "--coordinator") == want_address,
                      f"{kind} {name}: worker dials {want_address}")
                gpus = flag(c["args"], "--gpus")
                limit = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
                check(gpus is not None and limit is not None and int(gpus) == int(limit),
                      f"{kind} {name}: --gpus {gpus} equals its nvidia.com/gpu limit {limit}")
                check(spec.get("terminationGracePeriodSeconds", 30) >= 30,
                      f"{kind} {name}: SIGTERM grace leaves time to checkpoint and report")
                for flagname in ("--data-dir", "--checkpoint-dir"):
                    mounted = [m["mountPath"] for m in c["volumeMounts"]]
                    check(flag(c["args"], flagname) in mounted, f"{kind} {name}: {flagname} is a mounted volume")
        for v in spec.get("volumes", []):
            if "persistentVolumeClaim" in v:
                check(v["persistentVolumeClaim"]["claimName"] in claims,
                      f"{kind} {name}: volume {v['name']} names a PersistentVolumeClaim of deploy/kubernetes/")

    if len(sys.argv) > 2:
        helps = {}
        for kind, name, spec in pods:
            for c in spec["containers"]:
                binary = c["command"][0]
                if binary not in helps:
                    helps[binary] = subprocess.run([os.path.join(sys.argv[2], binary), "--help"],
                                                   capture_output=True, text=True, timeout=60).stdout
                for a in c["args"]:
                    if a.startswith("--"):
                        check(re.search(r"\s" + re.escape(a) + r"\b", helps[binary]) is not None,
                              f"{kind} {name}: {binary} has the flag {a}")

    # 3. The same kubectl call refuses a broken manifest.
    bad = os.path.join(tmp, "bad")
    os.mkdir(bad)
    with open(os.path.join(kdir, "coordinator.yaml")) as f:
        broken = re.sub(r"^kind: StatefulSet$", "kind: StatefullSet", f.read(), flags=re.M)
    with open(os.path.join(bad, "coordinator.yaml"), "w") as f:
        f.write(broken)
    code, out, err = kubectl(kubeconfig, [bad])
    check(code != 0 and "StatefullSet" in err, f"a misspelt kind is refused (exit {code}: {err.strip()[:120]})")

    server.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("deploy/kubernetes/: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
