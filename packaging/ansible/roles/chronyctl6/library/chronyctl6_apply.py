#!/usr/bin/python
"""Ansible module of the chronyctl6 role: `chronyctl6 apply` with Ansible's check and diff modes.

Check mode plans (`apply --dry-run`) and reports what would change, with the diff of every file
under --diff; normal mode plans the same way, then applies only when something would change, so
a host already as desired reports "ok", never "changed". The result carries chronyctl6's own
output envelope (`plan`, `result`).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: chronyctl6_apply
short_description: Apply chronyctl6 (check mode plans, diff mode shows the change)
options:
  root: {type: str, default: /, description: "/ for the running host, or an image's root"}
  wait: {type: float, default: 60, description: "seconds a live apply waits for Time Sync; 0: no wait"}
  settings_content:
    type: str
    description: >-
      settings.toml as the role's template renders it. In check mode the template task writes
      nothing, so the plan is made with this content (a private temporary file, removed after).
"""


def _run(module: AnsibleModule, argv: list[str]) -> tuple[int, dict[str, Any], str]:
    code, out, err = module.run_command(argv)
    try:
        envelope = json.loads(out)
    except ValueError:
        envelope = {}
    if not isinstance(envelope, dict):
        envelope = {}
    return code, envelope, err


def _failed(module: AnsibleModule, what: str, code: int, envelope: dict[str, Any], err: str) -> None:
    said = "; ".join(m.get("text", "") for m in envelope.get("messages", []) if isinstance(m, dict))
    module.fail_json(msg=f"chronyctl6 {what} exited {code}: {said or err.strip() or 'no output'}",
                     rc=code, envelope=envelope)


def main() -> None:
    module = AnsibleModule(
        argument_spec={"root": {"type": "str", "default": "/"}, "wait": {"type": "float", "default": 60.0},
                       "settings_content": {"type": "str"}},
        supports_check_mode=True,
    )
    root, wait = module.params["root"], module.params["wait"]
    binary = module.get_bin_path("chronyctl6", required=True)
    planning = [binary, "apply", "--root", root, "--dry-run", "--diff", "-o", "json"]
    pending = module.params["settings_content"] if module.check_mode else None
    if pending is None:
        code, plan, err = _run(module, planning)
    else:
        with tempfile.TemporaryDirectory(prefix="chronyctl6-ansible.") as private:  # 0700
            path = os.path.join(private, "settings.toml")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(pending)
            code, plan, err = _run(module, [*planning, "--settings", path])
    if code != 0:
        _failed(module, "apply --dry-run", code, plan, err)
    data = plan.get("data", {})
    changed = bool(data.get("changed"))
    result: dict[str, Any] = {"changed": changed, "plan": plan}
    if module._diff and data.get("diff"):
        result["diff"] = {"prepared": data["diff"]}
    if not changed or module.check_mode:
        module.exit_json(**result)
    argv = [binary, "apply", "--root", root, "-o", "json"]
    if root == "/":
        argv += ["--wait", f"{wait:g}"] if wait > 0 else ["--no-wait"]
    code, done, err = _run(module, argv)
    if code != 0:
        _failed(module, "apply", code, done, err)
    result["result"] = done
    result["changed"] = bool(done.get("data", {}).get("changed"))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
