"""Offline schema check of rendered Kubernetes objects against the API models
of Debian's python3-kubernetes (generated from the Kubernetes OpenAPI spec):
every field must exist in its object's model and have the model's type.

The models are Kubernetes 1.22's. Fields added since (NEWER_FIELDS) are
accepted and left to the chart test's own assertions; objects of kinds the
models lack (custom resources) are reported as not checked.
"""
import re

import kubernetes.client as k8s

MODELS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
    # autoscaling/v2 (GA in 1.23) has the schema of 1.22's v2beta2.
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler",
}
# (model, field) pairs newer than the models: gRPC probes (beta 1.24, GA 1.27).
NEWER_FIELDS = {("V1Probe", "grpc")}


def _check(value, typ, path, errors):
    if value is None:
        return
    if typ in ("str",):
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string, got {value!r}")
    elif typ == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{path}: expected an integer, got {value!r}")
    elif typ == "bool":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected a boolean, got {value!r}")
    elif typ == "object":  # int-or-string, quantities, free-form
        return
    elif typ.startswith("list["):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list")
            return
        for i, v in enumerate(value):
            _check(v, typ[5:-1], f"{path}[{i}]", errors)
    elif typ.startswith("dict("):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map")
            return
        inner = re.match(r"dict\(str, (.*)\)$", typ).group(1)
        for kk, v in value.items():
            # Quantities (resources) are int-or-string in YAML.
            if inner == "str" and isinstance(v, (int, float)) and not isinstance(v, bool):
                continue
            _check(v, inner, f"{path}.{kk}", errors)
    elif typ == "datetime":
        return
    else:
        validate_model(value, typ, path, errors)


def validate_model(obj, model_name, path, errors):
    model = getattr(k8s, model_name)
    if not isinstance(obj, dict):
        errors.append(f"{path}: expected an object ({model_name})")
        return
    by_json = {json: attr for attr, json in model.attribute_map.items()}
    for key, value in obj.items():
        if key not in by_json:
            if (model_name, key) not in NEWER_FIELDS:
                errors.append(f"{path}.{key}: unknown field of {model_name}")
            continue
        _check(value, model.openapi_types[by_json[key]], f"{path}.{key}", errors)


def validate(doc):
    """Returns (checked, errors) for one rendered object."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key not in MODELS:
        return False, []
    errors = []
    validate_model(doc, MODELS[key], f"{doc['kind']}/{doc['metadata'].get('name')}", errors)
    return True, errors
