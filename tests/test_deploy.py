"""The deployment files, checked offline and fast.

- Dockerfile: parsed with dockerfile-parse; multi-stage on an ARG base, non-root, EXPOSE/HEALTHCHECK/CMD, nothing
  secret baked in, and the one install recipe (docker/install.sh) that the slow replay test below runs too.
- deploy/compose.yaml: validated against the Compose Specification JSON schema that check-jsonschema ships
  (check_jsonschema/builtin_schemas/vendor/compose-spec.json, from github.com/compose-spec/compose-spec).
- deploy/k8s/*.yaml: validated (strict: unknown fields are errors) against the Kubernetes JSON schemas generated
  from the Kubernetes OpenAPI spec, which kubernetes-validate ships for every minor version it supports.
- Both: replicas share quotas through Redis and keys through one writable volume, and every RNNMT_* variable that
  deploy/ names is a setting of app/settings.py (or, in compose.yaml only, a variable of the compose file itself).
- RNNMT_SLOW_TESTS=1 also replays docker/install.sh in a fresh venv (a minute or two, needs the package index).
"""

from __future__ import annotations

import fnmatch
import importlib.resources
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
INSTALL_SCRIPT = ROOT / "docker" / "install.sh"
COMPOSE = ROOT / "deploy" / "compose.yaml"
K8S = ROOT / "deploy" / "k8s"
DEPLOY = ROOT / "deploy"
SERVE_CMD = ["rnnmt", "serve", "--host", "0.0.0.0", "--port", "8000"]
SECRETISH = re.compile(r"(?i)(token|secret|passw|api[_-]?key|credential|private[_-]?key)")
CA_OR_BUILD_ONLY = re.compile(r"(?i)(/etc/ssl|ca-certificates|\.pem\b|\.crt\b|pip\.conf|\.netrc|/opt/wheels|"
                              r"PIP_CERT|REQUESTS_CA_BUNDLE|SSL_CERT_FILE|CURL_CA_BUNDLE)")


# ---------------------------------------------------------------- Dockerfile

def instructions() -> list[dict]:
    parser = DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))
    return [i for i in parser.structure if i["instruction"] != "COMMENT"]


def stages() -> list[list[dict]]:
    """The instructions of each stage, FROM first (instructions before the first FROM are left out)."""
    result: list[list[dict]] = []
    for ins in instructions():
        if ins["instruction"] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def arg_defaults(instrs: list[dict]) -> dict[str, str]:
    defaults = {}
    for ins in instrs:
        if ins["instruction"] == "ARG":
            name, _, value = ins["value"].partition("=")
            defaults[name.strip()] = value.strip().strip('"')
    return defaults


def exec_form(value: str) -> list[str]:
    """The JSON array of CMD/ENTRYPOINT/HEALTHCHECK CMD (exec form, so signals reach the process)."""
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(x, str) for x in parsed), value
    return parsed


def final_stage() -> list[dict]:
    return stages()[-1]


def only(instrs: list[dict], name: str) -> dict:
    found = [i for i in instrs if i["instruction"] == name]
    assert len(found) == 1, f"expected one {name} in the final stage, found {len(found)}"
    return found[0]


def test_dockerfile_is_multi_stage_on_a_pinnable_slim_python_base() -> None:
    all_instrs = instructions()
    assert all_instrs[0]["instruction"] == "ARG", "the base image is a build argument declared before the first FROM"
    base_default = arg_defaults(all_instrs[:1])["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.\d+(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base_default), base_default
    froms = [s[0]["value"].split() for s in stages()]
    assert len(froms) >= 2, "multi-stage: a build stage and a slim run stage"
    stage_names = [f[2] for f in froms if len(f) == 3 and f[1].upper() == "AS"]
    for image, *_ in froms:
        assert image == "${PYTHON_IMAGE}" or image in stage_names, f"FROM {image}: use the PYTHON_IMAGE build argument"
    assert not any(":latest" in " ".join(f) for f in froms)
    # Only the venv and the models come from the build stage: no sources or build byproducts in the final image.
    copies_from = [i["value"] for i in final_stage() if i["instruction"] == "COPY" and "--from=" in i["value"]]
    assert copies_from == ["--from=build /opt/venv /opt/venv",
                           "--from=build /src/released-models /app/released-models"]
    assert not [i for i in final_stage() if i["instruction"] == "COPY" and "--from=" not in i["value"]]


def test_dockerfile_installs_with_the_shared_script_and_cpu_torch() -> None:
    build = stages()[0]
    args = arg_defaults(build)
    assert {"TORCH_SPEC", "TORCH_INDEX_URL", "PIP_FIND_LINKS"} <= set(args)
    assert args["TORCH_INDEX_URL"].rstrip("/").endswith("/whl/cpu"), "CPU PyTorch by default"
    assert args["PIP_FIND_LINKS"] == "", "no wheelhouse path baked in as a default"
    runs = [i["value"] for i in build if i["instruction"] == "RUN"]
    steps = [m.group(1) for r in runs for m in [re.search(r"\bdocker/install\.sh (torch|package|all) /opt/venv\b", r)]
             if m]
    assert steps in (["torch", "package"], ["all"]), runs
    # One torch pin everywhere: the Dockerfile, the install script and the Makefile say the same version.
    script_default = re.search(r'TORCH_SPEC=\$\{TORCH_SPEC:-([^}]+)\}', INSTALL_SCRIPT.read_text()).group(1)
    makefile_default = re.search(r"^TORCH_SPEC \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert args["TORCH_SPEC"] == script_default == makefile_default
    text = INSTALL_SCRIPT.read_text()
    assert '-c "$constraints" "$src"' in text, "the package is installed with the torch pin as a constraint"
    assert re.search(r"all\) install_torch; install_package", text), "torch first, then the package"


def test_dockerfile_runs_the_service_as_a_non_root_user() -> None:
    stage = final_stage()
    user = only(stage, "USER")["value"].split(":")[0]
    assert user not in {"root", "0"}
    assert stage.index(only(stage, "USER")) > max(stage.index(i) for i in stage if i["instruction"] == "RUN")
    if user.isdigit():
        assert int(user) >= 1000
        assert any(f"--uid {user}" in i["value"] for i in stage if i["instruction"] == "RUN"), "the uid is created"


def test_dockerfile_exposes_8000_checks_health_and_serves() -> None:
    stage = final_stage()
    assert only(stage, "EXPOSE")["value"].split() == ["8000"]
    health = only(stage, "HEALTHCHECK")["value"]
    options, _, command = health.partition("CMD")
    assert "--start-period=" in options, "model loading takes a while"
    check = exec_form(command.strip())
    assert check[0] == "python", "urllib from the venv's python: the slim base has no curl"
    assert "http://127.0.0.1:8000/health" in check[-1]
    assert exec_form(only(stage, "CMD")["value"]) == SERVE_CMD
    assert not [i for i in stage if i["instruction"] == "ENTRYPOINT"]


def test_dockerfile_settings_come_from_env_only() -> None:
    from app.settings import Settings

    stage = final_stage()
    env_keys = []
    for ins in stage:
        if ins["instruction"] == "ENV":
            env_keys += [part.split("=", 1)[0] for part in shlex.split(ins["value"])]
    rnnmt_keys = [k for k in env_keys if k.startswith("RNNMT_")]
    assert "RNNMT_MODELS_DIR" in rnnmt_keys, "site-packages has no released-models/: say where the image keeps them"
    fields = {f"RNNMT_{name.upper()}" for name in Settings.model_fields}
    assert set(rnnmt_keys) <= fields, f"unknown settings: {set(rnnmt_keys) - fields}"
    assert set(env_keys) - set(rnnmt_keys) <= {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
    models_env = next(p for i in stage if i["instruction"] == "ENV" for p in shlex.split(i["value"])
                      if p.startswith("RNNMT_MODELS_DIR="))
    assert f"released-models {models_env.split('=', 1)[1]}" in " ".join(
        i["value"] for i in stage if i["instruction"] == "COPY")
    # ... and readable by that user whatever the modes in the working tree (training writes its files 0600).
    build_runs = [i["value"] for i in stages()[0] if i["instruction"] == "RUN"]
    assert any(re.search(r"chmod -R \S*go=rX\S* /src/released-models", r) for r in build_runs), build_runs


def test_dockerfile_bakes_in_no_secret_ca_or_build_only_path() -> None:
    for ins in instructions():
        assert ins["instruction"] != "ADD", "COPY only (ADD fetches URLs and unpacks archives)"
        if ins["instruction"] in {"ENV", "ARG", "LABEL"}:
            names = [p.split("=", 1)[0] for p in shlex.split(ins["value"])]
            assert not [n for n in names if SECRETISH.search(n)], ins
        if ins["instruction"] in {"ENV", "ARG", "LABEL", "COPY", "RUN", "WORKDIR", "USER", "CMD", "HEALTHCHECK"}:
            assert not CA_OR_BUILD_ONLY.search(ins["value"]), f"line {ins['startline'] + 1}: {ins['content']}"


def dockerignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics, enough for these patterns: the last matching line wins; '!' lets a path back in;
    a pattern that matches a parent folder matches everything under it."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.rstrip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern[3:])
            candidates += [f"*/{pattern[3:]}", f"*/*/{pattern[3:]}"]
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_the_context_to_what_is_copied() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    for left_out in [".venv/bin/python", ".git/HEAD", "runs/en-de/checkpoints/last.safetensors", "tests/conftest.py",
                     "test-artifacts/shot.png", ".pytest_cache/v", ".ruff_cache/x", "data/train.en",
                     "app/__pycache__/cli.cpython-311.pyc", "rnnmt.egg-info/PKG-INFO"]:
        assert dockerignored(left_out, patterns), f"{left_out} would be sent to the build"
    sources = []
    for stage in stages():
        for ins in stage:
            if ins["instruction"] == "COPY" and "--from=" not in ins["value"]:
                sources += ins["value"].split()[:-1]
    assert sources
    for source in sources:
        assert not dockerignored(source.rstrip("/"), patterns), f"COPY {source} is excluded by .dockerignore"
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository, so the image build would fail"


# ---------------------------------------------------------------- Compose

def compose_schema() -> dict:
    ref = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    return json.loads(ref.read_text(encoding="utf-8"))


def compose_validator() -> jsonschema.protocols.Validator:
    schema = compose_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def with_defaults(text: str) -> str:
    """Compose interpolation with nothing set: ${VAR:-default} and ${VAR-default} become default."""
    return re.sub(r"\$\{[A-Z0-9_]+:?-([^}]*)\}", r"\1", text)


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_specification() -> None:
    compose_validator().validate(compose())


def test_compose_schema_is_strict_enough_to_catch_a_typo() -> None:
    broken = compose()
    broken["services"]["rnnmt"]["healthcheck"]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        compose_validator().validate(broken)


def test_compose_service_scales_and_is_bounded() -> None:
    from app.settings import Settings

    service = compose()["services"]["rnnmt"]
    assert "container_name" not in service, "a fixed name prevents --scale"
    (port,) = service["ports"]
    host_ip, host_ports, container_port = with_defaults(port).rsplit(":", 2)
    assert re.fullmatch(r"\d+-\d+", host_ports), f"a host port range, not one port: {port}"
    assert host_ip == "127.0.0.1" and container_port == "8000"
    assert service["build"]["context"] == ".." and (COMPOSE.parent / ".." / service["build"]["dockerfile"]).is_file()
    check = service["healthcheck"]["test"]
    assert check[0] == "CMD" and re.search(r"127\.0\.0\.1:8000/(ready|health)", check[-1])
    limits = service["deploy"]["resources"]["limits"]
    assert limits["cpus"] and limits["memory"]
    env = service["environment"]
    fields = {f"RNNMT_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, f"unknown settings: {set(env) - fields}"
    assert with_defaults(str(env["RNNMT_THREADS"])) == str(limits["cpus"]), "torch threads = CPU limit"
    mounts = {v["target"]: v for v in service["volumes"]}
    models = mounts[env["RNNMT_MODELS_DIR"]]
    assert models["read_only"] is True and models["type"] in {"bind", "volume"}


def setting_names() -> set[str]:
    from app.settings import Settings

    return {f"RNNMT_{name.upper()}" for name in Settings.model_fields}


def image_user() -> str:
    """The USER of the image, uid:gid."""
    return only(final_stage(), "USER")["value"]


def test_compose_replicas_share_quotas_through_a_private_healthy_redis() -> None:
    services = compose()["services"]
    rnnmt = services["rnnmt"]
    storage = urlsplit(rnnmt["environment"]["RNNMT_LIMITS_STORAGE"])
    assert storage.scheme == "redis" and storage.hostname in services, "a service of this file, by its name"
    assert storage.port in (None, 6379)
    redis = services[storage.hostname]
    assert redis["image"].startswith("redis:")
    assert "ports" not in redis, "Redis has no password: it stays on the project's network, off the host"
    assert rnnmt["depends_on"][storage.hostname]["condition"] == "service_healthy"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    command = redis["command"]
    assert command[0] == "redis-server" and "--port" not in command
    assert command[command.index("--save") + 1] == "" and command[command.index("--appendonly") + 1] == "no", \
        "counters only: no persistence"
    assert redis["read_only"] is True and redis["cap_drop"] == ["ALL"]


def test_compose_keys_file_is_on_a_volume_the_service_user_can_write() -> None:
    spec = compose()
    services = spec["services"]
    rnnmt = services["rnnmt"]
    assert rnnmt["read_only"] is True, "the root file system stays read-only: the keys file lives on a volume"
    keys_dir = str(PurePosixPath(rnnmt["environment"]["RNNMT_KEYS_DB"]).parent)
    keys = {v["target"]: v for v in rnnmt["volumes"]}[keys_dir]
    assert keys["type"] == "volume" and keys["source"] in spec["volumes"], "one named volume for every replica"
    assert not keys.get("read_only"), "`docker compose exec rnnmt rnnmt keys add` writes the file there"
    # A new named volume belongs to root: a one-shot service hands it to the image's user before the replicas start.
    (init_name,) = [name for name, dep in rnnmt["depends_on"].items()
                    if dep["condition"] == "service_completed_successfully"]
    init = services[init_name]
    assert init["entrypoint"] == ["chown", image_user(), keys_dir]
    assert [v["source"] for v in init["volumes"] if v["target"] == keys_dir] == [keys["source"]]
    assert init["cap_drop"] == ["ALL"] and init["cap_add"] == ["CHOWN"] and init["network_mode"] == "none"


# ---------------------------------------------------------------- Kubernetes

def k8s_documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def k8s_kind(kind: str, name: str = "rnnmt") -> dict:
    (doc,) = [d for _, d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


K8S_VERSIONS = ["1.27", "latest"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_match_the_kubernetes_schemas(version: str) -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    version = latest_version() if version == "latest" else version
    docs = k8s_documents()
    assert {d["kind"] for _, d in docs} >= {"Deployment", "Service", "HorizontalPodAutoscaler",
                                            "PersistentVolumeClaim", "NetworkPolicy"}
    names = [(d["kind"], d["metadata"]["name"]) for _, d in docs]
    assert len(names) == len(set(names)), "one object per kind and name"
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{name}: {doc['kind']} does not validate against Kubernetes {version}: {path}: {exc.message}")
    assert k8s_kind("HorizontalPodAutoscaler")["apiVersion"] == "autoscaling/v2"


def test_k8s_schemas_are_strict_enough_to_catch_a_mistake() -> None:
    import kubernetes_validate

    deployment = json.loads(json.dumps(k8s_kind("Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limit"] = {"cpu": "2"}  # not "limits"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.27", strict=True)
    deployment = json.loads(json.dumps(k8s_kind("Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8000"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.27", strict=True)


def pod_labels() -> dict[str, str]:
    return k8s_kind("Deployment")["spec"]["template"]["metadata"]["labels"]


def container() -> dict:
    (c,) = k8s_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def test_hpa_targets_the_deployment() -> None:
    deployment, hpa = k8s_kind("Deployment"), k8s_kind("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"], "Deployment", deployment["metadata"]["name"])
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in container()["resources"]["requests"], "CPU utilization is relative to the request"


def test_service_and_pdb_select_the_deployment_pods() -> None:
    labels = pod_labels()
    selector = k8s_kind("Deployment")["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    service = k8s_kind("Service")
    assert service["spec"]["selector"] and service["spec"]["selector"].items() <= labels.items()
    pdb = k8s_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    for port in service["spec"]["ports"]:
        target = port["targetPort"]
        assert ports.get(target, target) == 8000, "the Service sends traffic to the port the image serves on"


def test_deployment_probes_resources_and_user() -> None:
    from app.settings import Settings

    c = container()
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["port"] in {"http", 8000}
    resources = c["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), kind
    env = {e["name"]: e.get("value") for e in c["env"]}
    fields = {f"RNNMT_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, f"unknown settings: {set(env) - fields}"
    assert env["RNNMT_THREADS"] == str(resources["limits"]["cpu"]), "torch threads = CPU limit"
    pod_security = k8s_kind("Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert str(pod_security["runAsUser"]) == only(final_stage(), "USER")["value"].split(":")[0]
    assert "command" not in c and "args" not in c, "the image's CMD serves; settings come from env"


def env_of(c: dict) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in c["env"]}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_k8s_replicas_share_quotas_through_redis() -> None:
    storage = urlsplit(env_of(container())["RNNMT_LIMITS_STORAGE"])
    assert storage.scheme == "redis", "memory:// would count per pod"
    service = k8s_kind("Service", storage.hostname)
    (port,) = service["spec"]["ports"]
    assert (storage.port or 6379) == port["port"]
    redis = k8s_kind("Deployment", storage.hostname)
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    assert selects(redis["spec"]["selector"]["matchLabels"], redis_labels)
    assert selects(service["spec"]["selector"], redis_labels) and not selects(service["spec"]["selector"], pod_labels())
    for selector in (k8s_kind("Service")["spec"]["selector"], k8s_kind("Deployment")["spec"]["selector"]["matchLabels"],
                     k8s_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]):
        assert not selects(selector, redis_labels), "the rnnmt Service, Deployment and PDB leave the Redis pod alone"
    assert redis["spec"]["replicas"] == 1, "one counter store"
    (c,) = redis["spec"]["template"]["spec"]["containers"]
    assert c["image"].startswith("redis:")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports.get(port["targetPort"], port["targetPort"]) == 6379
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["exec"]["command"] == ["redis-cli", "ping"]
    args = c["args"]
    assert args[args.index("--save") + 1] == "" and args[args.index("--appendonly") + 1] == "no", "no persistence"
    assert redis["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    # Redis has no password: only the rnnmt pods may reach it.
    policy = k8s_kind("NetworkPolicy", storage.hostname)
    assert selects(policy["spec"]["podSelector"]["matchLabels"], redis_labels)
    (rule,) = policy["spec"]["ingress"]
    assert [selects(peer["podSelector"]["matchLabels"], pod_labels()) for peer in rule["from"]] == [True]
    assert [p["port"] for p in rule["ports"]] == [6379]


def test_k8s_pods_share_the_keys_file_on_a_read_write_many_volume() -> None:
    c = container()
    keys_dir = str(PurePosixPath(env_of(c)["RNNMT_KEYS_DB"]).parent)
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == keys_dir]
    assert not mount.get("readOnly"), "`kubectl exec deploy/rnnmt -- rnnmt keys add` writes the file there"
    pod = k8s_kind("Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claim = k8s_kind("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "pods on different nodes mount the same file"
    assert str(pod["securityContext"]["fsGroup"]) == image_user().split(":")[1], "the volume is the user's group's"


def test_k8s_service_links_add_no_rnnmt_variables() -> None:
    """Kubernetes gives every pod <SERVICE>_SERVICE_HOST, <SERVICE>_PORT, ... for each Service of the namespace:
    for Services named rnnmt* those are RNNMT_* variables, which the settings would read."""
    services = [d["metadata"]["name"] for _, d in k8s_documents() if d["kind"] == "Service"]
    assert any(name.upper().replace("-", "_").startswith("RNNMT") for name in services)
    for _, doc in k8s_documents():
        if doc["kind"] == "Deployment":
            assert doc["spec"]["template"]["spec"]["enableServiceLinks"] is False, doc["metadata"]["name"]


# ---------------------------------------------------------------- every file of deploy/

RNNMT_NAME = re.compile(r"\bRNNMT_[A-Z0-9_]*[A-Z0-9]\b")


def test_deploy_names_only_existing_settings() -> None:
    """A renamed or misspelt setting is silently ignored by the service (extra="ignore"): catch it here."""
    settings = setting_names()
    assert "RNNMT_KEYS_DB" in settings
    # compose.yaml's own variables (host ports, image, models folder), which the README may name too.
    compose_only = set(re.findall(r"\$\{(RNNMT_[A-Z0-9_]+)", COMPOSE.read_text())) - settings
    assert compose_only and not compose_only & set(compose()["services"]["rnnmt"]["environment"])
    files = sorted(p for p in DEPLOY.rglob("*") if p.is_file())
    assert COMPOSE in files and (DEPLOY / "README.md") in files
    for path in files:
        allowed = settings | compose_only if path in (COMPOSE, DEPLOY / "README.md") else settings
        unknown = set(RNNMT_NAME.findall(path.read_text())) - allowed
        assert not unknown, f"{path.relative_to(ROOT)} names {sorted(unknown)}, which app/settings.py does not have"


# ---------------------------------------------------------------- the install recipe, for real (slow)

@pytest.mark.skipif(os.environ.get("RNNMT_SLOW_TESTS") != "1",
                    reason="slow (1-2 min, needs the package index): RNNMT_SLOW_TESTS=1")
def test_install_script_replays_the_image_install(tmp_path: Path) -> None:
    """Run docker/install.sh the way the Dockerfile does, on the files the Dockerfile copies, into a fresh venv."""
    context = tmp_path / "src"
    for ins in stages()[0]:
        if ins["instruction"] == "COPY" and "--from=" not in ins["value"]:
            *sources, _ = ins["value"].split()
            for source in sources:
                src = ROOT / source
                if src.is_dir():
                    shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    (context / source).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, context / source)
    env = {**os.environ, "TORCH_SPEC": arg_defaults(stages()[0])["TORCH_SPEC"], "PYTHON": sys.executable}
    venv = tmp_path / "venv"
    result = subprocess.run(["sh", str(context / "docker" / "install.sh"), "all", str(venv), str(context)],
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "install.sh: torch" in result.stdout
    # What the image's CMD runs: the entry point exists and knows `serve`, from the installed copy, not the repo.
    help_text = subprocess.run([str(venv / "bin" / "rnnmt"), "serve", "--help"], capture_output=True, text=True,
                               cwd=tmp_path, timeout=120)
    assert help_text.returncode == 0 and "--host" in help_text.stdout, help_text.stderr
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import app, torch; print(app.__file__);"
                            "print(torch.version.cuda)"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    app_file, cuda = where.stdout.split()
    assert str(venv) in app_file and cuda == "None"


def test_the_wheel_holds_every_package_of_the_source_tree(tmp_path: Path) -> None:
    """A regular install (the image's) must carry every package: a subpackage left out of pyproject's list
    (model.kernels once was) only fails when the container starts."""
    import zipfile

    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside pyproject.toml
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "__pycache__", "runs", "released-models",
                                                                "build", "*.egg-info", "node_modules"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("rnnmt-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    packages = sorted(str(init.parent.relative_to(ROOT)) for top in ("app", "model", "training")
                      for init in (ROOT / top).rglob("__init__.py") if "__pycache__" not in init.parts)
    assert "model/kernels" in packages
    missing = [p for p in packages if f"{p}/__init__.py" not in names]
    assert not missing, f"packages missing from the wheel: {missing}"
