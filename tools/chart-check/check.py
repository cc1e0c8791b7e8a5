#!/usr/bin/env python3
"""Checks the manifests `helm template` rendered from deploy/helm/kratos-passkeys.

    check.py --dockerfile Dockerfile --secrets-values S.yaml \
        default=RENDER.yaml production=RENDER.yaml

Each NAME=FILE is one render (the whole `helm template` output). "default" is
the chart's default values (plus S.yaml, the secrets the check made up);
"production" is values-production.yaml. Every invariant the chart promises
is checked on what Kubernetes would receive, not on the templates, so
breaking one in any template fails here. Exits 1 listing every failure.
"""

import argparse
import re
import sys

import yaml

# The secrets of the service's configuration, and the variables that carry
# them (config/base.yaml, src/configuration.rs).
SECRET_PATHS = {
    "database.url": "KRATOS_PASSKEYS__DATABASE__URL",
    "ceremonies.keys": "KRATOS_PASSKEYS__CEREMONIES__KEYS",
    "webhook.api_key": "KRATOS_PASSKEYS__WEBHOOK__API_KEY",
    "admin.api_keys": "KRATOS_PASSKEYS__ADMIN__API_KEYS",
    "events.endpoints": "KRATOS_PASSKEYS__EVENTS__ENDPOINTS",
    "recovery_hook.notifier_auth_value": "KRATOS_PASSKEYS__RECOVERY_HOOK__NOTIFIER_AUTH_VALUE",
}
# Without these the service cannot start in production.
REQUIRED_SECRET_ENV = [
    "KRATOS_PASSKEYS__DATABASE__URL",
    "KRATOS_PASSKEYS__CEREMONIES__KEYS",
    "KRATOS_PASSKEYS__WEBHOOK__API_KEY",
]


class Render:
    def __init__(self, name, path):
        self.name = name
        with open(path) as f:
            self.docs = [d for d in yaml.safe_load_all(f) if isinstance(d, dict)]
        self.failures = []

    def kind(self, kind):
        return [d for d in self.docs if d.get("kind") == kind]

    def fail(self, message):
        self.failures.append(f"[{self.name}] {message}")

    def check(self, condition, message):
        if not condition:
            self.fail(message)
        return bool(condition)


def dockerfile_facts(path):
    """The final stage's USER and KRATOS_PASSKEYS_CONFIG_DIR."""
    user, config_dir = None, None
    with open(path) as f:
        text = f.read().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if line.upper().startswith("FROM "):
            user, config_dir = None, None
        elif line.upper().startswith("USER "):
            user = line.split()[1].split(":")[0]
        elif line.upper().startswith("ENV "):
            m = re.search(r"KRATOS_PASSKEYS_CONFIG_DIR=(\S+)", line)
            if m:
                config_dir = m.group(1)
    return user, config_dir


def leaf_strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from leaf_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from leaf_strings(v)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def secret_values(path):
    """Every string the check's secrets values file sets at a secret path."""
    with open(path) as f:
        values = yaml.safe_load(f) or {}
    config = (values.get("kratosPasskeys") or {}).get("config") or {}
    found = []
    for dotted in SECRET_PATHS:
        section, key = dotted.split(".")
        found.extend(leaf_strings((config.get(section) or {}).get(key)))
    # Short strings (a port, "true") would match anywhere; the made-up
    # secrets are long.
    return [s for s in found if len(s) >= 12]


def pod_containers(spec):
    return (spec.get("initContainers") or []) + (spec.get("containers") or [])


def selector_matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_security(r, where, pod_spec, uid):
    psc = pod_spec.get("securityContext") or {}
    r.check(psc.get("runAsNonRoot") is True, f"{where}: pod securityContext.runAsNonRoot is not true")
    r.check(((psc.get("seccompProfile") or {}).get("type")) == "RuntimeDefault",
            f"{where}: pod seccompProfile is not RuntimeDefault")
    for c in pod_containers(pod_spec):
        csc = c.get("securityContext") or {}
        name = f"{where} container {c.get('name')}"
        r.check(csc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem is not true")
        r.check(csc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation is not false")
        r.check(csc.get("privileged") in (None, False), f"{name}: privileged")
        r.check("ALL" in ((csc.get("capabilities") or {}).get("drop") or []), f"{name}: capabilities do not drop ALL")
        r.check((csc.get("runAsNonRoot", psc.get("runAsNonRoot"))) is True, f"{name}: runAsNonRoot is not true")
        run_as = csc.get("runAsUser", psc.get("runAsUser"))
        if uid is not None and uid.isdigit():
            r.check(run_as is not None and str(run_as) == uid,
                    f"{name}: runAsUser {run_as} is not the image's user {uid} (Dockerfile USER)")
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                r.check((res.get(part) or {}).get(resource),
                        f"{name}: resources.{part}.{resource} is not set")


def check_render(r, dockerfile, secrets, expect_optional):
    uid, config_dir = dockerfile
    services = {s["metadata"]["name"]: s for s in r.kind("Service")}
    deployments = r.kind("Deployment")
    if not r.check(len(deployments) == 1, f"expected one Deployment, found {len(deployments)}"):
        return
    deploy = deployments[0]
    pod = deploy["spec"]["template"]
    pod_labels = pod["metadata"].get("labels") or {}
    pod_spec = pod["spec"]
    containers = pod_spec.get("containers") or []
    main = next((c for c in containers if "serve" in (c.get("command") or []) + (c.get("args") or [])), None)
    if not r.check(main, "no container runs `serve`"):
        return
    env = {e["name"]: e for e in main.get("env") or []}

    # The rendered configuration.
    config_maps = r.kind("ConfigMap")
    rendered = None
    for cm in config_maps:
        if "production.yaml" in (cm.get("data") or {}):
            rendered = yaml.safe_load(cm["data"]["production.yaml"]) or {}
    if not r.check(rendered is not None, "no ConfigMap holds production.yaml"):
        return
    public_port = (rendered.get("public") or {}).get("port", 8080)
    admin_port = (rendered.get("admin") or {}).get("port", 8081)
    r.check((rendered.get("database") or {}).get("run_migrations_on_start") is False,
            "the rendered config does not say database.run_migrations_on_start: false")
    for listener in ("public", "admin"):
        r.check((rendered.get(listener) or {}).get("host") == "0.0.0.0",
                f"the rendered config's {listener}.host is not 0.0.0.0 (probes and Services reach the pod's address)")
    for dotted in SECRET_PATHS:
        section, key = dotted.split(".")
        r.check(key not in (rendered.get(section) or {}), f"the ConfigMap's production.yaml holds the secret {dotted}")
    for cm in config_maps:
        text = yaml.safe_dump(cm.get("data") or {}) + yaml.safe_dump(cm.get("binaryData") or {})
        for s in secrets:
            r.check(s not in text, f"ConfigMap {cm['metadata']['name']} holds a secret value")

    # Production environment, the config file where the image reads it,
    # secrets from a Secret.
    r.check((env.get("KRATOS_PASSKEYS_ENVIRONMENT") or {}).get("value") == "production",
            "KRATOS_PASSKEYS_ENVIRONMENT is not production")
    dir_ = (env.get("KRATOS_PASSKEYS_CONFIG_DIR") or {}).get("value", config_dir)
    mounts = {m["mountPath"]: m for m in main.get("volumeMounts") or []}
    r.check(f"{dir_}/production.yaml" in mounts, f"the rendered config is not mounted at {dir_}/production.yaml")
    r.check(dir_ == config_dir, f"KRATOS_PASSKEYS_CONFIG_DIR {dir_} is not the image's {config_dir} (its base.yaml)")
    for name, var in [(p, v) for p, v in SECRET_PATHS.items()]:
        e = env.get(var)
        if e is None:
            r.check(var not in REQUIRED_SECRET_ENV, f"{var} ({name}) is not set")
            continue
        r.check("value" not in e and (e.get("valueFrom") or {}).get("secretKeyRef"),
                f"{var} ({name}) does not come from a Secret")
    for var in REQUIRED_SECRET_ENV:
        ref = ((env.get(var) or {}).get("valueFrom") or {}).get("secretKeyRef") or {}
        r.check(ref and not ref.get("optional"), f"{var} is optional or missing: the pod would start without it")
    for e in main.get("env") or []:
        if "value" in e:
            for s in secrets:
                r.check(s not in str(e["value"]), f"env {e['name']} carries a secret value in the manifest")
    # Production refuses an admin listener beyond loopback that nothing
    # protects: the defaults must start.
    admin_cfg = rendered.get("admin") or {}
    keys_ref = ((env.get("KRATOS_PASSKEYS__ADMIN__API_KEYS") or {}).get("valueFrom") or {}).get("secretKeyRef") or {}
    r.check(admin_cfg.get("allow_unauthenticated") is True or (keys_ref and not keys_ref.get("optional")),
            "the admin listener is beyond loopback without allow_unauthenticated or required admin.api_keys: production refuses to start")

    # Listeners, probes.
    ports = {p.get("name"): p["containerPort"] for p in main.get("ports") or []}
    r.check(sorted(ports.values()) == sorted([public_port, admin_port]),
            f"containerPorts {sorted(ports.values())} are not the listeners' {public_port}, {admin_port}")

    def port_number(port):
        return ports.get(port) if isinstance(port, str) else port

    for probe, path in (("livenessProbe", "/health/alive"), ("readinessProbe", "/health/ready")):
        get = (main.get(probe) or {}).get("httpGet") or {}
        r.check(get.get("path") == path, f"{probe} path is {get.get('path')!r}, not {path}")
        r.check(port_number(get.get("port")) in (public_port, admin_port),
                f"{probe} port {get.get('port')!r} is neither listener's ({public_port}, {admin_port})")

    # Two Services: public and admin.
    def target(svc):
        return {port_number(p.get("targetPort", p.get("port"))) for p in svc["spec"].get("ports") or []}

    selecting = {n: s for n, s in services.items() if selector_matches(s["spec"].get("selector"), pod_labels)}
    admin_services = {n for n, s in selecting.items() if admin_port in target(s)}
    public_services = {n for n, s in selecting.items() if public_port in target(s)}
    r.check(len(public_services) == 1 and len(admin_services) == 1 and not (public_services & admin_services),
            f"expected one public and one admin Service, found public {sorted(public_services)}, admin {sorted(admin_services)}")
    for n in admin_services:
        r.check(services[n]["spec"].get("type", "ClusterIP") == "ClusterIP", f"admin Service {n} is not ClusterIP")

    # No Ingress (or Gateway route) ever reaches the admin Service.
    for ing in r.kind("Ingress"):
        backends = []
        spec = ing.get("spec") or {}
        if spec.get("defaultBackend"):
            backends.append(spec["defaultBackend"])
        for rule in spec.get("rules") or []:
            backends += [p.get("backend") or {} for p in (rule.get("http") or {}).get("paths") or []]
        for b in backends:
            name = (b.get("service") or {}).get("name")
            r.check(name not in admin_services, f"Ingress {ing['metadata']['name']} routes to the admin Service {name}")
            r.check(name in public_services, f"Ingress {ing['metadata']['name']} routes to {name}, not the public Service")
    for route in r.kind("HTTPRoute"):
        for rule in route["spec"].get("rules") or []:
            for b in rule.get("backendRefs") or []:
                r.check(b.get("name") not in admin_services, f"HTTPRoute routes to the admin Service {b.get('name')}")

    # Migrations: a pre-install,pre-upgrade hook Job running `migrate`.
    jobs = [j for j in r.kind("Job")
            if any("migrate" in (c.get("command") or []) + (c.get("args") or [])
                   for c in pod_containers(j["spec"]["template"]["spec"]))]
    if r.check(len(jobs) == 1, "no Job runs `migrate`"):
        job = jobs[0]
        ann = job["metadata"].get("annotations") or {}
        hooks = {h.strip() for h in ann.get("helm.sh/hook", "").split(",")}
        r.check({"pre-install", "pre-upgrade"} <= hooks, f"the migrate Job's hooks are {sorted(hooks)}, not pre-install and pre-upgrade")
        jspec = job["spec"]["template"]["spec"]
        check_security(r, "migrate Job", jspec, uid)
        jlabels = job["spec"]["template"]["metadata"].get("labels") or {}
        for s in services.values():
            r.check(not selector_matches(s["spec"].get("selector"), jlabels),
                    f"Service {s['metadata']['name']} selects the migrate Job's pod")
        jenv = {e["name"]: e for c in pod_containers(jspec) for e in c.get("env") or []}
        r.check(((jenv.get("KRATOS_PASSKEYS__DATABASE__URL") or {}).get("valueFrom") or {}).get("secretKeyRef"),
                "the migrate Job's DSN does not come from a Secret")
        r.check((jenv.get("KRATOS_PASSKEYS_ENVIRONMENT") or {}).get("value") == "production",
                "the migrate Job does not run in production")
        # A chart-made Secret must exist before the Job reads it.
        for sec in r.kind("Secret"):
            sann = sec["metadata"].get("annotations") or {}
            shooks = {h.strip() for h in sann.get("helm.sh/hook", "").split(",")}
            r.check({"pre-install", "pre-upgrade"} <= shooks
                    and int(sann.get("helm.sh/hook-weight", 0)) < int(ann.get("helm.sh/hook-weight", 0)),
                    f"Secret {sec['metadata']['name']} is not created before the migrate Job")

    # Replicas, disruption budget, security, resources.
    hpas = [h for h in r.kind("HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"].get("name") == deploy["metadata"]["name"]]
    replicas = deploy["spec"].get("replicas")
    if replicas is None:
        r.check(hpas and all(h["spec"].get("minReplicas", 1) >= 2 for h in hpas),
                "the Deployment sets no replicas and no HPA keeps at least 2")
    else:
        r.check(replicas >= 2, f"replicas is {replicas}, fewer than 2")
    for h in hpas:
        r.check(h["spec"].get("minReplicas", 1) >= 2, f"HPA minReplicas {h['spec'].get('minReplicas')} is below 2")
    pdbs = [p for p in r.kind("PodDisruptionBudget")
            if selector_matches((p["spec"].get("selector") or {}).get("matchLabels"), pod_labels)]
    r.check(pdbs, "no PodDisruptionBudget selects the pods")
    check_security(r, "Deployment", pod_spec, uid)
    r.check(pod_spec.get("automountServiceAccountToken") is False, "the pods mount a service account token they do not need")

    # Optional objects: present in production, absent by default.
    monitors = r.kind("ServiceMonitor")
    if expect_optional:
        r.check(hpas, "no HorizontalPodAutoscaler in the production render")
        r.check(monitors, "no ServiceMonitor in the production render")
        r.check(r.kind("Ingress"), "no Ingress in the production render")
        for ing in r.kind("Ingress"):
            r.check((ing.get("spec") or {}).get("tls"), f"Ingress {ing['metadata']['name']} has no TLS")
    else:
        r.check(not hpas, "an HPA in the default render")
        r.check(not monitors, "a ServiceMonitor in the default render")
        r.check(not r.kind("Ingress"), "an Ingress in the default render")
    for m in monitors:
        labels_of = {n: services[n]["metadata"].get("labels") or {} for n in services}
        chosen = {n for n, l in labels_of.items() if selector_matches(m["spec"]["selector"].get("matchLabels"), l)}
        r.check(chosen and chosen <= admin_services, f"ServiceMonitor selects {sorted(chosen)}, not only the admin Service")
        for ep in m["spec"].get("endpoints") or []:
            r.check(ep.get("path") == "/metrics", f"ServiceMonitor path {ep.get('path')!r} is not /metrics")
            names = {p.get("name") for n in chosen for p in services[n]["spec"]["ports"]}
            r.check(ep.get("port") in names, f"ServiceMonitor port {ep.get('port')!r} is not the admin Service's")
            if not admin_cfg.get("allow_unauthenticated"):
                creds = ((ep.get("authorization") or {}).get("credentials") or {})
                r.check(creds.get("name") and creds.get("key"),
                        "admin.api_keys guard /metrics but the ServiceMonitor sends no bearer token")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dockerfile", required=True)
    ap.add_argument("--secrets-values", required=True)
    ap.add_argument("renders", nargs="+", help="NAME=FILE; NAME production expects HPA, ServiceMonitor, Ingress")
    args = ap.parse_args()
    dockerfile = dockerfile_facts(args.dockerfile)
    if None in dockerfile:
        sys.exit(f"check.py: no USER or KRATOS_PASSKEYS_CONFIG_DIR in {args.dockerfile}'s last stage")
    secrets = secret_values(args.secrets_values)
    if not secrets:
        sys.exit("check.py: no secret values to look for")
    failures = []
    for spec in args.renders:
        name, path = spec.split("=", 1)
        r = Render(name, path)
        check_render(r, dockerfile, secrets, expect_optional=(name == "production"))
        failures += r.failures
        if not r.failures:
            print(f"chart-check: {name}: {len(r.docs)} manifests, every invariant holds")
    for f in failures:
        print(f"chart-check: FAIL {f}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
