"""Renders chat templates with Jinja2 as transformers' apply_chat_template does
(trim_blocks, lstrip_blocks, raise_exception), the golden for mcserve's own
renderer. Reads a JSON list of {"template", "context"} on stdin; writes a JSON
list of {"text"} or {"error"} to stdout."""
import json
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)


def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    out = []
    for case in json.load(sys.stdin):
        try:
            out.append({"text": env.from_string(case["template"]).render(**case["context"])})
        except jinja2.exceptions.TemplateError as e:
            out.append({"error": str(e)})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
