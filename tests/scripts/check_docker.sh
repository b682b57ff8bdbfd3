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
for m in re.findall(r"^COPY\s+(?!--from)(\S+)\s", df, re.M):
    if m != ".": need(m, "Dockerfile COPY")
for m in re.findall(r"/src/(scripts/\S+?\.sh)", df): need(m, "Dockerfile RUN")
# multi-stage: a build stage and a final runtime stage
stages = re.split(r"^FROM\s+", df, flags=re.M)[1:]
names = [re.match(r"\S+(?:\s+AS\s+(\S+))?", st).group(1) for st in stages]
if len(stages) < 2 or names[0] != "build":
    fails.append("Dockerfile: expected a first stage `AS build` and a final stage")
final = stages[-1] if stages else ""
final_name = names[-1] if names else None
for svc_name, svc in svcs.items():
    t = (svc.get("build") or {}).get("target")
    if svc.get("build") and t not in names: fails.append(f"compose: service {svc_name} builds target {t!r}, not a Dockerfile stage {names}")
if (svcs.get("connector", {}).get("build") or {}).get("target") != final_name:
    fails.append("compose: the connector must run the final stage")
# the final stage: runtime libraries only, exactly the .deb's Depends (CMakeLists.txt)
cm = open(os.path.join(root, "CMakeLists.txt")).read()
m = re.search(r'CPACK_DEBIAN_PACKAGE_DEPENDS\s+"([^"]+)"', cm)
deb = {d.strip() for d in m.group(1).split(",")} - {"libc6"} if m else set()
inst = set()
for run in re.findall(r"apt-get install([^&]*)", final):
    inst |= {w for w in run.replace("\\", " ").split() if not w.startswith("-")}
if deb and not deb <= inst: fails.append(f"Dockerfile final stage lacks runtime libraries {sorted(deb - inst)}")
extra = inst - deb - {"ca-certificates"}
if extra: fails.append(f"Dockerfile final stage installs more than the runtime libraries: {sorted(extra)}")
for bad in ("install-deps.sh", "build-essential", "cmake", "gcc", "python3", "postgresql", "mongo_server", "-dev"):
    if bad in final: fails.append(f"Dockerfile final stage mentions {bad!r} (build or test tools)")
if not re.search(r"^USER\s+(?!root\b|0\b)\S+", final, re.M): fails.append("Dockerfile final stage does not switch to a non-root user")
hc = re.search(r"^HEALTHCHECK\b.*?CMD\s+\[(.*?)\]", final, re.M | re.S)
if not hc: fails.append("Dockerfile final stage has no HEALTHCHECK")
elif "/usr/bin/arraysync" not in hc.group(1) or "healthz" not in hc.group(1):
    fails.append("Dockerfile HEALTHCHECK must use the binary (arraysync healthcheck .../healthz): no curl in the image")
for src in re.findall(r"^COPY\s+--from=build\s+(\S+)", final, re.M):
    if not re.search(r"DESTDIR=" + re.escape(src.split("/usr")[0]) + r"\b", df):
        fails.append(f"Dockerfile: COPY --from=build {src} is not what the build stage installs")
# configuration files named by the final image and the compose commands
def example(path):
    mm = re.match(r"/usr/share/arraysync/examples/(\S+)", path)
    return "mappings/examples/" + mm.group(1) if mm else None
for y in re.findall(r"(/usr/share/arraysync/examples/\S+?\.ya?ml)", df):
    need(example(y), "Dockerfile CMD (installed from mappings/examples)")
for name, svc in svcs.items():
    cmd = svc.get("command", [])
    for arg in cmd if isinstance(cmd, list) else [cmd]:
        for y in re.findall(r"(/usr/share/arraysync/examples/\S+?\.ya?ml)", str(arg)):
            need(example(y), f"service {name} command")
if "mappings/examples/" not in cm or "arraysync/examples" not in cm:
    fails.append("CMakeLists.txt does not install mappings/examples to share/arraysync/examples")
if fails:
    print("docker/ is inconsistent with the code:"); [print("  -", x) for x in fails]; sys.exit(1)
print("docker/: compose parses; %d services; all referenced paths exist" % len(svcs))
PY
# the configuration the connector container runs must validate, and the binary must offer the
# health check the image uses
MONGODB_URI=mongodb://mongo:27017/?replicaSet=rs0 PG_DSN="host=postgres dbname=shop" \
  "$bin" check -c "$root/mappings/examples/arraysync-postgres.yaml" >/dev/null
echo "docker/: arraysync check passes on the container's configuration"
set +e
"$bin" healthcheck "http://127.0.0.1:1/healthz" >/dev/null 2>&1
hrc=$?
set -e
[ "$hrc" = 1 ] || { echo "docker/: arraysync healthcheck is missing or broken (exit $hrc, want 1 for a closed port)"; exit 1; }
echo "docker/: the HEALTHCHECK command exists in the binary"
