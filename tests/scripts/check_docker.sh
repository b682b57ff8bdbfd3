#!/usr/bin/env bash
# Checks what can be checked of docker/ without a Docker engine: the compose file parses,
# every path it and the Dockerfile name exists, the Dockerfile installs with the README's
# script, and the configs the containers run validate with `arraysync check`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/build/arraysync}
/usr/bin/python3 - "$root" <<'PY'
import os, re, sys, yaml
root = sys.argv[1]
fails = []
def need(path, why):
    if not os.path.exists(os.path.join(root, path)):
        fails.append(f"{path} missing ({why})")
with open(os.path.join(root, "docker/compose.yml")) as f:
    compose = yaml.safe_load(f)
svcs = compose.get("services", {})
for name in ("mongo", "postgres", "connector", "tests"):
    if name not in svcs: fails.append(f"compose: service {name} missing")
if not str(svcs.get("mongo", {}).get("image", "")).startswith("mongo:7"): fails.append("compose: mongo is not mongo:7")
if not str(svcs.get("postgres", {}).get("image", "")).startswith("postgres:16"): fails.append("compose: postgres is not postgres:16")
for name, svc in svcs.items():
    b = svc.get("build")
    if b:
        ctx = os.path.normpath(os.path.join("docker", b.get("context", ".")))
        need(os.path.join(ctx, b.get("dockerfile", "Dockerfile")), f"service {name} build")
    for v in svc.get("volumes", []):
        src = v.split(":")[0]
        if src.startswith("."): need(os.path.normpath(os.path.join("docker", src)), f"service {name} volume")
    for p in svc.get("ports", []):
        if not str(p).startswith("127.0.0.1:"): fails.append(f"compose: service {name} publishes {p} beyond loopback")
    cmd = svc.get("command", [])
    for arg in cmd if isinstance(cmd, list) else [cmd]:
        for m in re.findall(r"/src/(\S+\.ya?ml)", str(arg)): need(m, f"service {name} command")
df = open(os.path.join(root, "docker/Dockerfile")).read()
if "scripts/install-deps.sh" not in df: fails.append("Dockerfile does not use scripts/install-deps.sh")
if "USER arraysync" not in df: fails.append("Dockerfile does not switch to a non-root user")
for m in re.findall(r"^COPY\s+(\S+)\s", df, re.M):
    if m != ".": need(m, "Dockerfile COPY")
for m in re.findall(r"/src/(\S+?\.ya?ml)", df): need(m, "Dockerfile CMD")
for m in re.findall(r"/src/(scripts/\S+?\.sh)", df): need(m, "Dockerfile RUN")
if fails:
    print("docker/ is inconsistent with the code:"); [print("  -", x) for x in fails]; sys.exit(1)
print("docker/: compose parses; %d services; all referenced paths exist" % len(svcs))
PY
# the configuration the connector container runs must validate
MONGODB_URI=mongodb://mongo:27017/?replicaSet=rs0 PG_DSN="host=postgres dbname=shop" \
  "$bin" check -c "$root/mappings/examples/arraysync-postgres.yaml" >/dev/null
echo "docker/: arraysync check passes on the container's configuration"
