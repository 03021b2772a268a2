"""Offline checks of the deployment files under infra/.

No cluster is involved: every KubeRay resource is validated against the CRD's own
OpenAPI schema (copies in tests/data/kuberay-crds, so a clean clone suffices), the pod
templates of the plain Kubernetes objects against the PodTemplateSpec schema embedded in
the RayCluster CRD, the AWS cluster-launcher YAML against the schema Ray ships, and the
cross-references between the files (image tag, Secrets, Services, CLI commands, config
paths, Dockerfile COPY sources) against the repo.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
CRD_DIR = REPO / "tests" / "data" / "kuberay-crds"
DOCKERFILE = INFRA / "Dockerfile"
AWS_CLUSTER = INFRA / "aws" / "cluster.yaml"
KUBERAY_KINDS = {"RayCluster", "RayJob", "RayCronJob"}
CORE_KINDS = {("v1", "Secret"), ("v1", "Service"), ("apps/v1", "Deployment"), ("batch/v1", "CronJob")}
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 3 MB of YAML


# --------------------------------------------------------------------------- loading


def _documents() -> list[tuple[str, dict]]:
    """(id, document) for every Kubernetes document under infra/ (multi-document aware)."""
    docs = []
    for path in sorted([*INFRA.rglob("*.yaml"), *INFRA.rglob("*.yml")]):
        if path == AWS_CLUSTER:
            continue
        for i, doc in enumerate(yaml.load_all(path.read_text(), Loader=Loader)):
            if doc is None:  # a leading '---' or a comment-only part
                continue
            name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc, dict) else "?"
            kind = doc.get("kind", "?") if isinstance(doc, dict) else "?"
            docs.append((f"{path.relative_to(REPO)}#{i}:{kind}/{name}", doc))
    return docs


DOCS = _documents()
KUBERAY_DOCS = [(i, d) for i, d in DOCS if d.get("kind") in KUBERAY_KINDS]


def _by_kind(kind: str) -> list[dict]:
    return [d for _, d in DOCS if d.get("kind") == kind]


def _to_jsonschema(node):
    """A Kubernetes structural (OpenAPI v3) schema as a JSON Schema that validates like
    the API server does with strict field validation (kubectl's default since 1.27).

    - ``x-kubernetes-int-or-string: true`` means "integer or string". controller-gen
      already writes it as ``anyOf: [{type: integer}, {type: string}]`` next to the
      extension (a quantity's ``pattern`` then only applies to the string branch);
      where a schema has the extension without anyOf/type, the same anyOf is added.
    - An object with ``properties`` and no ``additionalProperties`` gets
      ``additionalProperties: false``: the API server rejects unknown fields under
      strict validation (and would silently prune them otherwise), so a typo such as
      ``rayStartParam`` must fail here too. ``x-kubernetes-preserve-unknown-fields:
      true`` keeps such an object open.
    - ``nullable: true`` adds ``null`` to the type.
    - The other ``x-kubernetes-*`` keys (list-type, list-map-keys, map-type, CEL
      ``x-kubernetes-validations``) are dropped: they are not evaluated here.
    - Property *names* are never rewritten: ``properties`` maps names to schemas, so
      the walk descends by keyword, not into every dict.
    """
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if "properties" in node:
        out["properties"] = {name: _to_jsonschema(s) for name, s in node["properties"].items()}
    for key in ("items", "not"):
        if isinstance(node.get(key), dict):
            out[key] = _to_jsonschema(node[key])
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _to_jsonschema(node["additionalProperties"])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            out[key] = [_to_jsonschema(s) for s in node[key]]
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node and "type" not in node:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and isinstance(node.get("type"), str):
        out["type"] = [node["type"], "null"]
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.cache
def _crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> JSON Schema, for every served version of the in-repo CRDs."""
    schemas = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=Loader)
        assert crd["kind"] == "CustomResourceDefinition", path
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schemas[(f"{group}/{version['name']}", kind)] = _to_jsonschema(
                    version["schema"]["openAPIV3Schema"])
    return schemas


def _errors(schema: dict, doc) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


def _crd_errors(doc: dict) -> list[str]:
    schema = _crd_schemas().get((doc.get("apiVersion"), doc.get("kind")))
    assert schema is not None, f"no CRD in {CRD_DIR} for {doc.get('apiVersion')} {doc.get('kind')}"
    return _errors(schema, doc)


@functools.cache
def _pod_template_schema() -> dict:
    """core/v1 PodTemplateSpec, as embedded in the RayCluster CRD's head group."""
    rc = _crd_schemas()[("ray.io/v1", "RayCluster")]
    return rc["properties"]["spec"]["properties"]["headGroupSpec"]["properties"]["template"]


def _walk(node, path=()):
    """Yield (path, dict) for every mapping nested in node."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, (*path, i))


def _containers(doc) -> list[dict]:
    return [c for _, d in _walk(doc) for key in ("containers", "initContainers")
            for c in (d.get(key) or []) if isinstance(c, dict)]


# --------------------------------------------------------------------------- KubeRay resources


def test_infra_has_the_expected_resources():
    kinds = sorted(d.get("kind", "?") for _, d in DOCS)
    assert {"RayCluster", "RayJob", "RayCronJob", "CronJob", "Deployment", "Service", "Secret"} <= set(kinds), kinds
    for doc_id, doc in DOCS:
        known = doc.get("kind") in KUBERAY_KINDS or (doc.get("apiVersion"), doc.get("kind")) in CORE_KINDS
        assert known, f"{doc_id}: unexpected {doc.get('apiVersion')} {doc.get('kind')} (add a check for it)"


@pytest.mark.parametrize("doc_id,doc", KUBERAY_DOCS, ids=[i for i, _ in KUBERAY_DOCS])
def test_kuberay_resource_matches_its_crd(doc_id, doc):
    assert doc["apiVersion"] == "ray.io/v1", doc_id
    errors = _crd_errors(doc)
    assert not errors, f"{doc_id}:\n" + "\n".join(errors)


def _cluster_specs(doc: dict) -> list[dict]:
    spec = doc["spec"]
    if doc["kind"] == "RayCronJob":
        return [spec["jobTemplate"].get("rayClusterSpec")]
    return [spec.get("rayClusterSpec")] if doc["kind"] == "RayJob" else [spec]


@pytest.mark.parametrize("doc_id,doc", KUBERAY_DOCS, ids=[i for i, _ in KUBERAY_DOCS])
def test_ray_clusters_have_token_auth_and_the_three_groups(doc_id, doc):
    for spec in _cluster_specs(doc):
        assert spec is not None, f"{doc_id}: needs its own rayClusterSpec"
        assert spec["rayVersion"] == "2.60.0", doc_id
        assert spec.get("authOptions", {}).get("mode") == "token", f"{doc_id}: token auth off"
        groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
        assert set(groups) == {"cpu", "gpu"}, doc_id
        gpu_limits = [c["resources"]["limits"] for c in _containers(groups["gpu"])]
        assert all("nvidia.com/gpu" in lim for lim in gpu_limits), doc_id
        assert not any("nvidia.com/gpu" in c.get("resources", {}).get("limits", {})
                       for c in _containers(groups["cpu"]) + _containers(spec["headGroupSpec"])), doc_id


def test_the_validator_bites():
    """A manifest with a wrong field type, an unknown field or a bad quantity fails."""
    good = copy.deepcopy(_by_kind("RayCluster")[0])
    assert not _crd_errors(good)

    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    assert any("workerGroupSpecs/0/replicas" in e and "not of type 'integer'" in e for e in _crd_errors(wrong_type))

    typo = copy.deepcopy(good)
    typo["spec"]["headGroupSpec"]["rayStartParam"] = typo["spec"]["headGroupSpec"].pop("rayStartParams")
    errors = _crd_errors(typo)
    assert any("rayStartParam" in e and "Additional properties" in e for e in errors), errors

    bad_enum = copy.deepcopy(good)
    bad_enum["spec"]["authOptions"]["mode"] = "password"
    assert any("authOptions/mode" in e for e in _crd_errors(bad_enum))

    # int-or-string: both spellings of a quantity pass, a list does not
    container = good["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    container["resources"]["limits"]["cpu"] = 8
    container["resources"]["requests"]["cpu"] = "7500m"
    assert not _crd_errors(good)
    container["resources"]["limits"]["cpu"] = [8]
    assert any("resources/limits/cpu" in e for e in _crd_errors(good))

    cron = copy.deepcopy(_by_kind("RayCronJob")[0])
    del cron["spec"]["schedule"]
    assert any("'schedule' is a required property" in e for e in _crd_errors(cron))


# --------------------------------------------------------------------------- plain Kubernetes objects


@pytest.mark.parametrize("doc_id,doc", DOCS, ids=[i for i, _ in DOCS])
def test_every_document_has_identity_and_images(doc_id, doc):
    assert isinstance(doc.get("apiVersion"), str) and isinstance(doc.get("kind"), str), doc_id
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc.get("metadata", {}).get("name", "")), doc_id
    for c in _containers(doc):
        assert c.get("name") and isinstance(c.get("image"), str) and c["image"], f"{doc_id}: container {c}"


def _pod_templates(doc: dict) -> list[dict]:
    if doc["kind"] == "Deployment":
        return [doc["spec"]["template"]]
    if doc["kind"] == "CronJob":
        return [doc["spec"]["jobTemplate"]["spec"]["template"]]
    return []


def test_core_pod_templates_match_the_pod_schema():
    templates = [(doc_id, t) for doc_id, d in DOCS for t in _pod_templates(d)]
    assert len(templates) >= 2
    for doc_id, template in templates:
        errors = _errors(_pod_template_schema(), template)
        assert not errors, f"{doc_id}:\n" + "\n".join(errors)
    bad = copy.deepcopy(templates[0][1])
    bad["spec"]["containers"][0]["ports"] = [{"containerPort": "five thousand"}]
    assert _errors(_pod_template_schema(), bad)


def test_core_objects_are_well_formed():
    for dep in _by_kind("Deployment"):
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        probe = dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
        assert probe["path"] == "/health"
    for svc in _by_kind("Service"):
        selected = [d for d in _by_kind("Deployment")
                    if svc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert selected, f"Service {svc['metadata']['name']} selects no Deployment"
    for cron in _by_kind("CronJob"):
        assert cron["spec"]["concurrencyPolicy"] == "Forbid"
        assert len(cron["spec"]["schedule"].split()) == 5
    for secret in _by_kind("Secret"):
        assert secret["type"] == "Opaque" and secret["stringData"]


def test_secret_references_resolve():
    """Every Secret (and key) a manifest names is in secrets.example.yaml."""
    secrets = {s["metadata"]["name"]: set(s["stringData"]) for s in _by_kind("Secret")}
    refs = []
    for doc_id, doc in DOCS:
        for _, node in _walk(doc):
            if isinstance(node.get("secretKeyRef"), dict):
                refs.append((doc_id, node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
            if isinstance(node.get("secretRef"), dict):
                refs.append((doc_id, node["secretRef"]["name"], None))
            if isinstance(node.get("authOptions"), dict):
                # KubeRay reads the token from the key auth_token of authOptions.secretName
                refs.append((doc_id, node["authOptions"]["secretName"], "auth_token"))
    assert refs
    for doc_id, name, key in refs:
        assert name in secrets, f"{doc_id}: Secret {name} is not in secrets.example.yaml"
        assert key is None or key in secrets[name], f"{doc_id}: Secret {name} has no key {key}"


def test_service_addresses_resolve():
    """MLFLOW_TRACKING_URI and the Jobs API address point at Services these files create."""
    services = {(s["metadata"]["name"], p["port"]) for s in _by_kind("Service") for p in s["spec"]["ports"]}
    # KubeRay names a RayCluster's head Service <name>-head-svc (8265: dashboard and Jobs API)
    services |= {(f"{rc['metadata']['name']}-head-svc", 8265) for rc in _by_kind("RayCluster")}
    urls = [(doc_id, env["value"]) for doc_id, doc in DOCS for _, env in _walk(doc)
            if env.get("name") == "MLFLOW_TRACKING_URI" and "value" in env]
    urls += [(doc_id, arg.split("=", 1)[1]) for doc_id, doc in DOCS for c in _containers(doc)
             for arg in c.get("command", []) + c.get("args", []) if str(arg).startswith("--address=")]
    assert len(urls) > 3
    for doc_id, url in urls:
        m = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", url)
        assert m and (m[1], int(m[2])) in services, f"{doc_id}: {url} is no Service of infra/"


# --------------------------------------------------------------------------- AWS cluster launcher


def test_aws_cluster_config_matches_rays_schema():
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(AWS_CLUSTER.read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    errors = _errors(schema, config)
    assert not errors, "\n".join(errors)
    # Ray's own path (`ray up`): fill in the AWS defaults, then validate the result
    validate_config(prepare_config(copy.deepcopy(config)))

    types = config["available_node_types"]
    gpu = [t for t in types.values() if t["resources"].get("GPU")]
    assert gpu and all(t["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot" for t in gpu)
    assert any(not t["resources"].get("GPU") and t["resources"].get("CPU") for t in types.values())

    bad = copy.deepcopy(config)
    bad["available_node_types"][config["head_node_type"]]["resources"]["CPU"] = "0"
    assert _errors(schema, bad)
    bad = copy.deepcopy(config)
    bad["docker"]["imagee"] = "typo"
    assert _errors(schema, bad)


# --------------------------------------------------------------------------- image, commands, configs


@functools.cache
def _makefile_image() -> str:
    assert shutil.which("make"), "make is needed (it is the README's entry point)"
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGE", "MAKEFLAGS", "MAKELEVEL")}
    out = subprocess.run(["make", "--no-print-directory", "-n", "image"], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"docker build .*-t (\S+)", out)
    assert m, out
    return m[1]


def test_every_image_is_the_one_make_image_builds():
    image = _makefile_image()
    version = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M)[1]
    assert image == f"restoray:{version}"
    images = {(doc_id, c["image"]) for doc_id, doc in DOCS for c in _containers(doc)}
    docker = yaml.safe_load(AWS_CLUSTER.read_text())["docker"]
    images |= {("infra/aws/cluster.yaml", docker[k]) for k in ("image", "head_image", "worker_image") if k in docker}
    assert len(images) > 5
    wrong = sorted(f"{doc_id}: {img}" for doc_id, img in images if img != image)
    assert not wrong, f"expected {image} everywhere:\n" + "\n".join(wrong)


def _command_lines() -> list[tuple[str, list[str]]]:
    """Every command line in infra/: RayJob/RayCronJob entrypoints, container commands."""
    lines = []
    for doc_id, doc in DOCS:
        for _, node in _walk(doc):
            if isinstance(node.get("entrypoint"), str):
                lines.append((doc_id, shlex.split(node["entrypoint"])))
        for c in _containers(doc):
            if c.get("command") or c.get("args"):
                lines.append((doc_id, [str(a) for a in c.get("command", []) + c.get("args", [])]))
    return lines


def _restoray_argv(argv: list[str]) -> list[str] | None:
    """The arguments after `restoray` / `python -m pipelines.cli`, wherever they start."""
    for i, tok in enumerate(argv):
        if Path(tok).name == "restoray":
            return argv[i + 1:]
        if tok == "-m" and argv[i + 1:i + 2] == ["pipelines.cli"]:
            return argv[i + 2:]
    return None


def _workdir() -> str:
    return re.findall(r"^WORKDIR\s+(\S+)", DOCKERFILE.read_text(), re.M)[-1].rstrip("/")


def _repo_path(path: str) -> Path:
    """A path as the image sees it (relative to WORKDIR, or absolute under it) -> repo path."""
    prefix = _workdir() + "/"
    return REPO / (path[len(prefix):] if path.startswith(prefix) else path)


COMMANDS = [(doc_id, args) for doc_id, argv in _command_lines() if (args := _restoray_argv(argv)) is not None]


def test_infra_runs_train_retrain_and_restore():
    assert {"train", "retrain", "restore"} <= {args[0] for _, args in COMMANDS}, COMMANDS


@pytest.mark.parametrize("doc_id,args", COMMANDS, ids=[f"{i}:{a[0]}" for i, a in COMMANDS])
def test_entrypoint_is_a_valid_restoray_command(doc_id, args):
    from pipelines import cli
    from pipelines.config import load_experiment

    parser = cli._parser()
    subcommands = set(next(a for a in parser._actions if a.dest == "command").choices)
    assert args[0] in subcommands, f"{doc_id}: `restoray {args[0]}` is no subcommand ({sorted(subcommands)})"
    if args[0] == "restore":  # SRC and DST, the model by --model: no config positional
        try:
            parsed = parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"{doc_id}: restoray rejects {args}")
        assert parsed.model.startswith("models:/") or parsed.config, f"{doc_id}: a zoo file needs --config"
        assert all(p.startswith("s3://") for p in (parsed.src, parsed.dst)), f"{doc_id}: a cluster job reads S3"
        assert not parsed.config or _repo_path(parsed.config).is_file(), f"{doc_id}: {parsed.config} does not exist"
        return
    config = _repo_path(args[1])
    assert config.is_file(), f"{doc_id}: {args[1]} -> {config.relative_to(REPO)} does not exist"
    try:
        parsed = parser.parse_args([args[0], str(config), *args[2:]])
    except SystemExit:
        pytest.fail(f"{doc_id}: restoray rejects {args}")
    if args[0] in ("train", "tune", "retrain"):  # an experiment config; overrides name real fields
        load_experiment(config, getattr(parsed, "overrides", []), check_paths=False)


def _cpus(quantity) -> float:
    q = str(quantity)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def _ray_nodes(spec: dict, autoscale: bool) -> list[dict[str, float]]:
    """Logical resources of each Ray node a RayClusterSpec can have up at once.

    KubeRay starts Ray with the container's CPU and nvidia.com/gpu limits unless
    rayStartParams say otherwise; an autoscaling run may count on maxReplicas.
    """
    nodes = []
    groups = [(spec["headGroupSpec"], 1)] + [
        (g, g.get("maxReplicas" if autoscale else "replicas", g.get("replicas", 1))) for g in spec["workerGroupSpecs"]]
    for group, count in groups:
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        params = group.get("rayStartParams", {})
        node = {"CPU": _cpus(params.get("num-cpus", limits["cpu"])),
                "GPU": float(params.get("num-gpus", limits.get("nvidia.com/gpu", 0)))}
        nodes += [node] * count
    return nodes


def _target_cluster(doc: dict, argv: list[str]) -> dict:
    """The RayClusterSpec a command runs on: the job's own, or the RayCluster it submits to."""
    if doc["kind"] in ("RayJob", "RayCronJob"):
        return _cluster_specs(doc)[0]
    address = next(a.split("=", 1)[1] for a in argv if a.startswith("--address="))
    name = re.fullmatch(r"http://([a-z0-9-]+)-head-svc:8265", address)[1]
    return next(rc["spec"] for rc in _by_kind("RayCluster") if rc["metadata"]["name"] == name)


def test_every_cluster_can_hold_its_run():
    """The check restoray makes before starting (pipelines.cluster.check_fits), offline:
    a job whose cluster is too small would otherwise fail only at 2 a.m."""
    from pipelines.cluster import run_resources
    from pipelines.config import load_experiment

    docs, checked = dict(DOCS), 0
    for doc_id, argv in _command_lines():
        args = _restoray_argv(argv)
        if not args or args[0] not in ("train", "tune", "retrain"):
            continue
        overrides = [a for a in args[2:] if "=" in a and not a.startswith("-")]
        cfg = load_experiment(_repo_path(args[1]), overrides, check_paths=False)
        nodes = _ray_nodes(_target_cluster(docs[doc_id], argv), cfg.scaling.autoscaling)
        need = run_resources(cfg)
        have = {k: sum(n[k] for n in nodes) for k in ("CPU", "GPU")}
        assert all(need[k] <= have[k] for k in need), f"{doc_id}: {args[0]} needs {need}, cluster has {have}"
        per_worker = {"CPU": cfg.scaling.cpus_per_worker, "GPU": 1.0 if cfg.scaling.use_gpu else 0.0}
        assert any(all(n[k] >= v for k, v in per_worker.items()) for n in nodes), f"{doc_id}: no node fits a worker"
        checked += 1
    assert checked >= 3


def test_restore_jobs_fit_their_cluster():
    """The model actors ``restoray restore`` would ask for (pipelines.restore.plan_actors) exist
    on the cluster, and each fits one node: a pool that cannot start would wait forever."""
    from pipelines import cli
    from pipelines.restore import plan_actors

    docs, checked = dict(DOCS), 0
    for doc_id, argv in _command_lines():
        args = _restoray_argv(argv)
        if not args or args[0] != "restore":
            continue
        parsed = cli._parser().parse_args(args)
        nodes = _ray_nodes(_target_cluster(docs[doc_id], argv), autoscale=False)
        have = {k: sum(n[k] for n in nodes) for k in ("CPU", "GPU")}
        actors = plan_actors(have, parsed.num_actors, parsed.gpus_per_actor)
        placeable = sum(int(min(n["GPU"] // actors.gpus if actors.gpus else float("inf"), n["CPU"] // actors.cpus))
                        for n in nodes)
        assert placeable >= actors.count, f"{doc_id}: {actors.count} actors ({actors}) do not fit {nodes}"
        assert have["CPU"] - actors.count * actors.cpus >= 1, f"{doc_id}: no CPU left for the read/write tasks"
        checked += 1
    assert checked >= 1


def test_every_named_config_exists():
    """Any configs/...yaml named anywhere in infra/ (comments included) is in the repo."""
    named = set()
    for path in INFRA.rglob("*"):
        if path.is_file():
            named |= set(re.findall(r"(?:/app/)?configs/[\w./-]+\.ya?ml", path.read_text()))
    assert named
    missing = sorted(p for p in named if not _repo_path(p).is_file())
    assert not missing, f"named in infra/ but not in the repo: {missing}"


def test_dockerfile_copies_what_exists_and_pins_torch():
    text = DOCKERFILE.read_text()
    ignored = [line.strip() for line in (INFRA / "Dockerfile.dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    copies = re.findall(r"^COPY\s+(?!--from)(.+)$", text, re.M)
    assert copies
    sources = [src for line in copies for src in line.split()[:-1] if not src.startswith("--")]
    for src in sources:
        assert (REPO / src).exists(), f"COPY source {src} does not exist"
        assert not any(fnmatch.fnmatch(src, pat) for pat in ignored), f"COPY {src} is excluded by the dockerignore"
    # every package setuptools installs, and the configs the manifests name, are copied
    assert {"pipelines", "preprocessing", "trainers", "degradations", "configs", "pyproject.toml"} <= set(sources)
    assert re.search(r"^COPY\s+configs\s+\./configs$", text, re.M) and _workdir() == "/app"
    torch_pin = re.search(r'"torch==([^"]+)"', (REPO / "pyproject.toml").read_text())[1]
    assert f"pip install torch=={torch_pin}" in text
    assert re.search(r"^FROM python:3\.11", text, re.M)
