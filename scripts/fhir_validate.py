"""Validate FHIR R4 JSON resources; see scripts/fhir-validate.

Each error names who found it: `fhir.resources:` (the independent model validation) or
`extra rule:` (the FHIR rules below, which that package does not enforce).
"""

import importlib
import json
import sys

# Required bindings the model classes of fhir.resources 6.x do not check.
REQUIRED_CODES = {
    ("Patient", "gender"): {"male", "female", "other", "unknown"},
}


def structural_errors(value, path="$"):
    """FHIR JSON forbids empty arrays, empty objects and nulls anywhere."""
    if value is None:
        yield f"{path}: null is not allowed in FHIR JSON"
    elif isinstance(value, list):
        if not value:
            yield f"{path}: empty arrays are not allowed in FHIR JSON"
        for i, item in enumerate(value):
            yield from structural_errors(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        if not value:
            yield f"{path}: empty objects are not allowed in FHIR JSON"
        for key, item in value.items():
            yield from structural_errors(item, f"{path}.{key}")


def validate(document):
    kind = document.get("resourceType")
    if not isinstance(kind, str):
        return ["$.resourceType is missing"]
    errors = [f"extra rule: {e}" for e in structural_errors(document)]
    for (resource, field), codes in REQUIRED_CODES.items():
        if kind == resource and field in document and document[field] not in codes:
            errors.append(
                f"extra rule: $.{field}: {document[field]!r} is not one of {sorted(codes)}"
            )
    try:
        module = importlib.import_module(f"fhir.resources.{kind.lower()}")
        getattr(module, kind).parse_obj(document)
    except Exception as exc:  # the model's own validation errors
        errors.append("fhir.resources: " + str(exc).replace("\n", "; "))
    return errors


def main(paths):
    failed = False
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            errors = validate(json.load(handle))
        if errors:
            failed = True
            print(f"{path}: INVALID: " + " | ".join(errors))
        else:
            print(f"{path}: valid FHIR R4")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
